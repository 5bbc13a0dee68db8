//! The server core: every operation a front end can ask for (apps, config, domains,
//! deploys, rollouts and rollbacks, formation, one-off runs, the supervision of running
//! processes, git repositories and pushes, events and logs), over the store, builder, runner
//! and router. Front ends (`crate::http`, and later the dashboard and webhooks) call it; it
//! never names axum or HTTP, so a rule enforced here holds for all of them.

mod apps;
pub(crate) mod auth;
mod deploy;
mod error;
mod events;
mod logs;
mod one_off;
mod paas;
pub(crate) mod push;
pub(crate) mod repos;
mod rollout;
mod supervise;
pub mod validate;

pub use apps::{MAX_PROCESSES, MAX_QUANTITY};
pub use deploy::SourceTree;
pub use error::{Error, Result};
pub use events::AppEvents;
pub use logs::LogQuery;
pub use paas::Paas;
pub use repos::Git;
