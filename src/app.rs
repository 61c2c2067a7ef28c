//! What every command needs, built once from the environment: settings, AWS clients and
//! the state store. The CLI and the Lambda handler both start here.

use crate::aws::{Clients, Settings};
use crate::config::Job;
use crate::error::Result;
use crate::secrets::{self, DbConfig, Role};
use crate::state::Store;

#[derive(Debug, Clone)]
pub struct App {
    pub settings: Settings,
    pub clients: Clients,
    pub store: Store,
}

impl App {
    /// From the process environment (`LOADER_*`, the standard AWS variables).
    pub async fn from_env() -> Result<App> {
        let settings = Settings::from_env()?;
        let clients = Clients::from_env(&settings).await;
        App::new(settings, clients)
    }

    pub fn new(settings: Settings, clients: Clients) -> Result<App> {
        let store = Store::new(clients.dynamodb.clone(), settings.state_table()?);
        Ok(App {
            settings,
            clients,
            store,
        })
    }

    /// The job's source connection settings, resolved from its reference.
    pub async fn source(&self, job: &Job) -> Result<DbConfig> {
        Ok(secrets::resolve(Role::Source, &job.source_url(), &self.clients.secrets).await?)
    }

    /// The job's destination connection settings, resolved from its reference.
    pub async fn destination(&self, job: &Job) -> Result<DbConfig> {
        Ok(secrets::resolve(
            Role::Destination,
            &job.destination_url(),
            &self.clients.secrets,
        )
        .await?)
    }
}
