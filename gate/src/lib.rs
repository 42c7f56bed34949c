//! `accountmap-gate` (SPEC "Web gate"): signs a browser user in to an unmodified RStudio
//! Server open source with OpenID Connect (Google by default) or a trusted proxy's header, by
//! asking accountmapd for a one-time ticket and posting it as the password to rserver's own
//! sign-in endpoints. The gate holds no policy: accountmapd verifies the ID token or the proxy
//! signature, maps the name and applies the policy exactly as for a PAM sign-in.

pub mod config;
pub mod flow;
pub mod oidc;
pub mod pages;
pub mod rserver;
pub mod serve;
pub mod upstream;
pub mod web;
