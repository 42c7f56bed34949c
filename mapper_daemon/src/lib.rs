//! accountmapd's decisions as plain functions and types, so that unit tests can call them
//! without a socket, plus the server and admin-CLI plumbing around them.
//!
//! The path of a request: [`server`] reads a frame and the peer's credentials, [`engine`] turns
//! the request into a decision by running [`resolve`] (the mapping pipeline over
//! [`accounts_file`] and [`rewrite`] rules) and [`policy`] against account data from [`system`]
//! (cached by [`cache`]), and every decision is written by [`log`].

pub mod accounts_file;
pub mod brake;
pub mod cache;
pub mod config;
pub mod engine;
pub mod ldap;
pub mod log;
pub mod memcache;
pub mod nss;
pub mod oidc;
pub mod policy;
pub mod proxy;
pub mod proxy_verify;
pub mod resolve;
pub mod rewrite;
pub mod server;
pub mod system;
#[cfg(test)]
mod test_support;
