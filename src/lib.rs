//! octo-budget's core: every rule, no command line, no printing, no
//! environment and no clock (`now` and the environment come in as
//! arguments). The binary (`main.rs`, `cli.rs`, `commands/`, `output/`)
//! parses, calls this crate and renders its types. See README,
//! "Architecture".

pub mod alerts;
pub mod attribution;
pub mod budget;
pub mod config;
pub mod hook;
pub mod ledger;
pub mod loaded;
pub mod model;
pub mod money;
pub mod pricing;
pub mod proposal;
pub mod protect;
pub mod report;
pub mod spend;
pub mod transcript;

pub use loaded::Loaded;
