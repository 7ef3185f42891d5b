//! `llmops-api`: the HTTP API. Routes live in one module per resource under [`routes`]; the
//! embedded mode also runs the queue workers in this process (see [`startup`]).

pub mod docs;
pub mod http;
pub mod routes;
pub mod startup;
pub mod state;

pub use startup::Application;
pub use state::AppState;
