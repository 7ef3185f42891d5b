//! `llmops-api`: the HTTP API. Routes live in one module per resource under [`routes`]; the
//! embedded mode also runs the queue workers in this process (see [`startup`]).

pub mod docs;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod http;
pub mod rate_limit;
pub mod routes;
pub mod services;
pub mod startup;
pub mod state;

pub use envelope::Envelope;
pub use error::ApiError;
pub use startup::Application;
pub use state::AppState;
