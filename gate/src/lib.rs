//! `accountmap-gate` (SPEC "Web gate", issue 17): signs a browser user in to an unmodified
//! RStudio Server open source through rserver's own sign-in form, with a one-time ticket from
//! accountmapd as the password.
//!
//! Being built. What is here so far: [`rserver`], the client side of rserver's sign-in
//! protocol (its public key, the encrypted credentials, the form).

pub mod rserver;
