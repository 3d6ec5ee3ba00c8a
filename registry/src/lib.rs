//! The Outpost plugin registry: where vendors publish signed plugins and
//! nodes fetch them, online or from a signed bundle on a USB stick.
//!
//! - [`admin`]: namespaces and tokens, for the central team.
//! - [`keys`]: ed25519 keys for every role, as files.
//! - [`tuf`]: TUF metadata assembled from tough's schema and signed.
//! - [`repository`]: the registry's repository over time (init, publish,
//!   timestamp refresh, root rotation).
//! - [`artifact`]: a plugin as a CNCF Wasm OCI artifact.
//! - [`release_check`]: the node's install checks, run before a manifest is stored.
//! - [`bundle`]: metadata and artifacts in one file, for nodes offline.
//! - [`store`]: redb for metadata, content-addressed blobs through cap-std.
//! - [`server`]: `outpost-registry serve`, OCI distribution plus `/tuf/`.
//! - [`tls`]: HTTPS, and plain HTTP only on loopback.
//! - [`fleet`]: enrolled nodes, their labels, and selectors; `fleet::client`, the node's side.
//! - [`rollout`]: a release to selected nodes in waves, braked by abort rules.
//! - [`desired`]: each node's desired state, signed by the director role.
//! - [`client`]: what a node uses to verify and fetch a release.
//! - [`vendor`]: what a vendor uses to push and publish.
//! - [`report`]: how the command-line tools show an error, each cause once.

pub mod admin;
pub mod artifact;
pub mod bundle;
pub mod client;
pub mod desired;
pub mod fleet;
pub mod keys;
pub mod release_check;
pub mod report;
pub mod repository;
pub mod rollout;
pub mod server;
pub mod store;
pub mod tls;
pub mod tuf;
pub mod vendor;
pub mod web_login;

/// The TUF library this crate builds on, for callers that name its types.
pub use tough;
