//! The sandbox's one integration-test binary: the simulators over real HTTP.

mod atrium_events;
mod helpers;
mod restart;
