//! HTTP plumbing shared by the two faces, the JSON API ([`crate::api`]) and the dashboard
//! ([`crate::web`]): who the caller is ([`identity`]), where they connect from ([`client`]), the
//! route tables with who may call each route ([`routes`]), bodies ([`body`]), htmx requests
//! ([`hx`]) and the headers and error shapes every response gets ([`headers`]).
//!
//! It may touch the shared state, `auth` (users, tokens, sessions) and `error`; it holds no
//! domain logic, and neither face imports the other: both import this.

pub mod body;
pub mod client;
pub mod headers;
pub mod hx;
pub mod identity;
pub mod routes;

pub use body::{OptionalJson, read_body};
pub use client::ClientInfo;
pub use hx::{HxRequest, page_or_partial};
pub use routes::{Access, RouteSpec};
