//! PLACEHOLDER written by the lead so the crate compiles; helper-1 replaces this whole
//! file with the real emulator.

#[derive(Debug)]
pub struct EmulatorConfig {
    pub backend_host: String,
    pub backend_port: u16,
    pub backend_user: String,
    pub s3: aws_sdk_s3::Client,
}

#[derive(Debug)]
pub struct RedshiftEmulator {
    port: u16,
}

impl RedshiftEmulator {
    pub async fn start(cfg: EmulatorConfig) -> anyhow::Result<RedshiftEmulator> {
        Ok(RedshiftEmulator {
            port: cfg.backend_port,
        })
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{dbname}?sslmode=disable",
            self.port
        )
    }
}
