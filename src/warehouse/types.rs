//! Placeholder: helper-2 writes this module.
