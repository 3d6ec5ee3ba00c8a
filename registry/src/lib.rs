//! The Outpost plugin registry: where vendors publish signed plugins and
//! nodes fetch them, online or from a signed bundle on a USB stick.
//!
//! Not built yet: this crate holds the place in the workspace. Until it
//! lands, nodes install plugins from package folders on local disk
//! (`outpost plugin add`). See `README.md` here.
