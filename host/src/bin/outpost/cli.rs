//! The command line, as clap sees it. The help text is the manual.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

const ABOUT: &str = "Outpost: a node that runs sandboxed WebAssembly plugins at the edge";

const LONG_ABOUT: &str = "\
Outpost runs plugins (printer drivers, payment tokenizers, courier adapters,
forecasters) as sandboxed WebAssembly components on a small box, and serves
them to apps on the same box through a local HTTP API. A plugin gets only the
capabilities its manifest asks for and the operator allows: no files, network
or secrets beyond that, and bounded time and memory for every call.

All of a node's state lives in one data directory: the database
(outpost.redb), compiled plugin code, installed assets, and the API token. The
node reads outpost.toml from there if present; `outpost config` shows what it
runs with.";

const AFTER_HELP: &str = "\
Start here:
  outpost demo                          a node on its defaults, printing to a virtual printer
  outpost plugin add ./my-plugin --yes  install a plugin package
  outpost run                           serve the local API (127.0.0.1:7171)

Environment:
  OUTPOST_DATA_DIR   the data directory (same as --data-dir)
  OUTPOST_CONFIG     a configuration file (same as --config)
  OUTPOST_LOG        log filter, e.g. `info,plugin=debug` (same as --log)";

#[derive(Debug, Parser)]
#[command(
    name = "outpost",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The node's data directory [default: $XDG_DATA_HOME/outpost, or ~/.local/share/outpost]
    #[arg(
        short = 'd',
        long,
        env = "OUTPOST_DATA_DIR",
        global = true,
        value_name = "DIR"
    )]
    pub data_dir: Option<PathBuf>,

    /// A configuration file to use instead of <DATA_DIR>/outpost.toml
    #[arg(
        short = 'c',
        long,
        env = "OUTPOST_CONFIG",
        global = true,
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// What to log, as a tracing filter: `warn`, `info`, `info,plugin=debug`
    /// [default: info for `run`, warn otherwise]
    #[arg(long, env = "OUTPOST_LOG", global = true, value_name = "FILTER")]
    pub log: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node: load the installed plugins and serve the local API
    ///
    /// Serves until interrupted (Ctrl-C or SIGTERM), then lets running
    /// requests finish. The API listens on api.listen (127.0.0.1:7171 by
    /// default) and wants the bearer token stored in <DATA_DIR>/api-token,
    /// which is created on first run.
    Run {
        /// Listen here instead of api.listen
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },

    /// Show a node working: install the reference printer driver, print a
    /// label and a receipt to virtual printers, and show what happened
    ///
    /// Uses ./outpost-demo as its data directory unless --data-dir is given,
    /// and starts afresh each time (it refuses to clear a directory it did not
    /// make). Everything goes through the real local API on 127.0.0.1.
    Demo {
        /// After the demo, keep the node and its API running until Ctrl-C
        #[arg(long)]
        serve: bool,
    },

    /// Install, list, inspect and remove plugins
    #[command(subcommand)]
    Plugin(PluginCommand),

    /// Call any function a plugin exports, with JSON arguments
    ///
    /// Arguments are JSON in WIT's own shapes: records as objects keyed by
    /// field name, variants as "case" or {"case": payload}, option as null or
    /// the value, list<u8> as a string or "hex:...". Without FUNCTION, lists
    /// what the plugin exports.
    ///
    /// Example:
    ///   outpost call outpost/thermal-printer lifecycle.health
    ///   outpost call outpost/thermal-printer status-request '"receipt"'
    Call {
        /// The plugin id, vendor/name
        plugin: String,
        /// The function: `render-label` or `printer.render-label`
        function: Option<String>,
        /// One JSON value per parameter
        args: Vec<String>,
    },

    /// Print the configuration the node runs with
    Config {
        /// Print the embedded defaults, with comments, instead
        #[arg(long)]
        defaults: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Install or upgrade a plugin from a package on this machine
    ///
    /// PATH is a package folder (plugin.toml, the component it names, and
    /// optionally assets/), its plugin.toml, or the component with plugin.toml
    /// beside it. The node checks the manifest against its policy and the
    /// component against the manifest, runs the plugin's health check and
    /// migration, and only then makes it active. Installing a newer version of
    /// an installed plugin upgrades it; its stored data is kept.
    Add {
        path: PathBuf,
        /// Approve the capabilities the plugin asks for without asking
        #[arg(short, long)]
        yes: bool,
    },

    /// List installed plugins and their status
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },

    /// Show one plugin: status, grants, limits, health and exports
    Info {
        /// The plugin id, vendor/name
        plugin: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },

    /// Remove a plugin; its stored data is kept unless --purge
    Remove {
        /// The plugin id, vendor/name
        plugin: String,
        /// Also delete everything the plugin stored
        #[arg(long)]
        purge: bool,
    },
}
