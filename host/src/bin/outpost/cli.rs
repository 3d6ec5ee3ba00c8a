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
  outpost demo                          a node on its defaults: print, pay, ship, forecast
  outpost plugin add ./my-plugin --yes  install a plugin package
  outpost run                           serve the local API (127.0.0.1:7171)

Trading by hand (through the running node, or the node opened here if none runs):
  outpost tokenize card.json            a card number -> a token
  outpost quote shipment.json           courier prices
  outpost book booking.json --print     book a courier and print the label
  outpost forecast --csv loaves.csv     tomorrow's demand from daily sales
  outpost outbox list                   what waits for the network

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
    /// The node's data directory [default: /var/lib/outpost if it exists
    /// (the service's), else $XDG_DATA_HOME/outpost or ~/.local/share/outpost]
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

    /// Make a data directory ready for a node, for the user it runs as
    ///
    /// Creates the data directory, the database, the API token, the scrape
    /// token and the console password, and checks they are the node's. As
    /// root with --user, first creates that system user (if missing), gives
    /// it the directory and does the rest as it, so nothing ends up owned by
    /// root; with --systemd, also writes the hardened systemd unit for this
    /// binary. Then `systemctl enable --now outpost`.
    #[command(
        after_help = "Examples:\n  sudo outpost setup --user outpost --systemd --data-dir /var/lib/outpost\n  \
                      sudo outpost setup --user outpost --systemd --allow-origin https://pos.example.com"
    )]
    Setup(crate::service::SetupArgs),

    /// Rotate the apps' API token
    #[command(subcommand)]
    Token(crate::service::TokenCommand),

    /// Back the node up: a snapshot now, copied to a file or USB stick
    ///
    /// A snapshot is the whole node as of one moment, taken while it
    /// serves: the database (plugins and their code, their data, the
    /// outbox, sealed keys), node.key, the node's identity, the tokens,
    /// outpost.toml and the plugins' assets; encrypted with the node's
    /// backup key and checked whole. The node also takes one every
    /// backup.every-minutes into <DATA_DIR>/snapshots (72 hours kept, within
    /// backup.max-local-mib). The first backup makes the backup key and
    /// shows its recovery code once: write it down, off the box.
    #[command(
        after_help = "Examples:\n  outpost backup -o /media/usb/stall-$(date +%F).outpost-backup\n  outpost backup --list"
    )]
    Backup(crate::backups::BackupArgs),

    /// Can this node trade right now? Every check, with the fix for each
    ///
    /// Plugins healthy, printers answering, couriers reachable (or able to
    /// queue), the outbox moving, disk free, the clock plausible, the API
    /// token readable by the apps, snapshots being taken. Exits 1 when a
    /// check fails. The bad-day runbook in docs/operator-guide.md starts here.
    Doctor {
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },

    /// Printer chores: a test page on each printer
    #[command(subcommand)]
    Print(crate::runbook::PrintCommand),

    /// Rehearse an outage: cut the node off, trade, bring it back, report
    ///
    /// The running node cuts itself off from everything outside the box (a
    /// mode in the node, not a firewall rule, and it always ends): plugins'
    /// outbound HTTP fails as if the line were down, the outbox, telemetry
    /// and update checks wait. The till's API and the printers keep working.
    /// A scripted sale, label and booking run at once; then the node stays
    /// offline for the rest of --for so the till can be tried by hand; then
    /// the network comes back and the drill reports what kept working, what
    /// queued and what went out afterwards. Exits 1 if the stall could not
    /// trade offline or did not catch up. Run one every quarter.
    #[command(after_help = "Example:\n  outpost drill --for 5m")]
    Drill(crate::runbook::DrillArgs),

    /// Bring a backup onto this box (a new one, or over a damaged node)
    ///
    /// Unpacks and checks everything beside the data directory first: the
    /// manifest's digests, the database's every page. Only then does it
    /// take the place of anything. Then it opens the node to show its
    /// plugins, and says what to do about the old box, the token and the
    /// keys. The node must be stopped.
    #[command(
        after_help = "Examples:\n  OUTPOST_RECOVERY_CODE=... outpost restore /media/usb/stall.outpost-backup -d /var/lib/outpost\n  outpost restore /var/lib/outpost/snapshots/1796280000.outpost-backup --replace --key-file /var/lib/outpost/backup.key"
    )]
    Restore(crate::backups::RestoreArgs),

    /// Install, list, inspect, follow and remove plugins
    ///
    /// Changes go to the running node over its admin socket
    /// (<DATA_DIR>/admin.sock, only the node's user can open it), or to the
    /// node opened here when none runs.
    #[command(subcommand)]
    Plugin(PluginCommand),

    /// See and steer plugin updates: staged, held for approval, on probation
    ///
    /// An update is downloaded, checked and staged while the old version
    /// serves; it is activated within updates.window (unless an app holds the
    /// update lock), then serves on probation: failing calls or a failing
    /// health check roll it back to the previous version and its data by
    /// themselves. An update that asks for more than the installed version
    /// waits for `outpost update approve`.
    #[command(subcommand)]
    Update(UpdateCommand),

    /// Call any function a plugin exports, with JSON arguments
    ///
    /// Arguments are JSON in WIT's own shapes: records as objects keyed by
    /// field name (snake_case, as the API, or kebab-case), variants as
    /// "case" or {"case": payload}, option as null or the value, list<u8>
    /// as a string or "hex:...". `@FILE` reads an argument from a file; one
    /// `@FILE` alone may hold every argument as an object keyed by parameter
    /// name, the shape of the API's request bodies and of docs/examples/.
    /// The answer is printed in the same shape. Without FUNCTION, lists
    /// what the plugin exports.
    ///
    /// Example:
    ///   outpost call outpost/thermal-printer lifecycle.health
    ///   outpost call outpost/thermal-printer status-request '"receipt"'
    ///   outpost call outpost/thermal-printer render-label @docs/examples/label.json
    Call {
        /// The plugin id, vendor/name
        plugin: String,
        /// The function: `render-label` or `printer.render-label`
        function: Option<String>,
        /// One JSON value per parameter, or @FILE
        args: Vec<String>,
    },

    /// Tokenize a card with the payment tokenizer
    ///
    /// Reads the card as JSON from FILE, or from standard input without FILE
    /// or with `-`, so the card number stays out of shell history and the
    /// process list. Either the card itself or the API body {"card": ...}
    /// (docs/examples/card.json). Prints the brand, last four and the token.
    #[command(after_help = "Example:\n  outpost tokenize < docs/examples/card.json")]
    Tokenize {
        #[command(flatten)]
        input: TradeInput,
    },

    /// Ask the courier adapter for prices
    ///
    /// FILE holds a quote request (docs/examples/shipment.json): ship_from,
    /// ship_to and parcels; ready_at (default: now) and service_codes
    /// (default: all) may be left out.
    Quote {
        #[command(flatten)]
        input: TradeInput,
    },

    /// Book a shipment with the courier adapter
    ///
    /// FILE holds a booking request: ship_from, ship_to and parcels (the same
    /// file as for `outpost quote`, docs/examples/shipment.json), plus a
    /// quote_id and the sender's reference, which --quote and --reference
    /// supply or override. The reference makes booking idempotent: booking it
    /// again returns the same booking, never a second shipment. When the
    /// courier cannot be reached the booking is queued in the outbox and
    /// delivered when it can be; `outpost booking ID` shows where it stands.
    #[command(
        after_help = "Example:\n  outpost quote shipment.json\n  outpost book shipment.json --quote <QUOTE> --reference ORDER-1042 --print"
    )]
    Book {
        #[command(flatten)]
        input: TradeInput,
        /// The quote to book, from `outpost quote`
        #[arg(long, value_name = "QUOTE")]
        quote: Option<String>,
        /// Your reference for the shipment (an order number), printed on the label
        #[arg(long, value_name = "TEXT")]
        reference: Option<String>,
        /// Print the labels on the default label printer once confirmed
        #[arg(long)]
        print: bool,
    },

    /// Show where a booking stands; print its labels or cancel it
    Booking {
        /// The booking id `outpost book` printed
        id: String,
        /// Print its labels on the default label printer
        #[arg(long, conflicts_with = "cancel")]
        print: bool,
        /// Cancel the booking with the courier
        #[arg(long)]
        cancel: bool,
        /// Use this courier adapter instead of the default
        #[arg(long, value_name = "PLUGIN")]
        plugin: Option<String>,
        /// Print the API's JSON instead of text
        #[arg(long)]
        json: bool,
    },

    /// Show a parcel's tracking events
    Track {
        /// The tracking number
        number: String,
        /// Use this courier adapter instead of the default
        #[arg(long, value_name = "PLUGIN")]
        plugin: Option<String>,
        /// Print the API's JSON instead of text
        #[arg(long)]
        json: bool,
    },

    /// Forecast demand with the forecaster
    ///
    /// Either FILE (or standard input) with a forecast request as JSON
    /// (docs/examples/forecast.json), or --csv with sales as `date,quantity`
    /// lines (2026-11-23,41). Several lines for one day add up; a negative
    /// quantity is a return and nets off that day; a header line is fine.
    ///
    /// --calendar names the days the shop opens and its events, in TOML:
    ///
    ///   open = ["mon", "thu", "fri", "sat", "sun"]
    ///   closed = ["2026-12-25"]          # holidays
    ///   open-dates = ["2026-12-22"]      # open against the pattern
    ///   [[event]]
    ///   name = "market day"
    ///   dates = ["2026-11-07", "2026-11-21", "2026-12-05"]
    ///
    /// Closed days are forecast as 0 and left out of the history; an event's
    /// effect is learned from its earlier dates. Without a calendar, a
    /// weekday that never sells is taken as closed (the answer says so).
    /// `outpost forecast backtest` tells how far to trust the numbers.
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "Examples:\n  outpost forecast --csv loaves.csv --horizon 3\n  outpost forecast --csv loaves.csv --calendar shop.toml\n  outpost forecast backtest --csv loaves.csv --calendar shop.toml"
    )]
    Forecast {
        #[command(subcommand)]
        check: Option<ForecastCommand>,
        #[command(flatten)]
        input: TradeInput,
        /// Sales as CSV instead of a JSON request
        #[arg(long, value_name = "FILE", conflicts_with = "file")]
        csv: Option<PathBuf>,
        /// The shop's opening days and events (TOML, as above)
        #[arg(long, value_name = "FILE", requires = "csv")]
        calendar: Option<PathBuf>,
        /// The last day the sales file is complete for [default: its last
        /// date]; open days after its last sale count as no sales
        #[arg(long, value_name = "DATE", requires = "csv")]
        until: Option<String>,
        /// The item's name [default: the CSV file's name]
        #[arg(long, requires = "csv")]
        item: Option<String>,
        /// The unit sales are counted in
        #[arg(long, default_value = "units", requires = "csv")]
        unit: String,
        /// Days to forecast
        #[arg(long, default_value_t = 7, requires = "csv")]
        horizon: u32,
        /// How much of the outcome the interval should cover, 0 to 1
        #[arg(long, default_value_t = 0.8, requires = "csv")]
        coverage: f64,
    },

    /// See what the outbox holds; retry or drop deliveries
    ///
    /// The outbox keeps what plugins (a queued courier booking) and the node
    /// itself (events for the centre) must deliver when the network is back.
    /// Entries that failed for good are `dead`: look at why, then retry or
    /// drop them.
    #[command(subcommand)]
    Outbox(OutboxCommand),

    /// Provision, list and remove the secret keys plugins use
    ///
    /// A plugin never sees its keys: it asks the node to HMAC, seal or unseal
    /// with a key by name, and only names its manifest lists. Keys are sealed
    /// under <DATA_DIR>/node.key; back up both the database and node.key.
    /// Managed over the admin socket (or with the node stopped), never over
    /// the app API.
    #[command(subcommand)]
    Keys(KeysCommand),

    /// Provision the node with the central team's root of trust, and see
    /// what it trusts
    ///
    /// A node installs from a registry or a bundle only what TUF metadata
    /// signed under this root says; `outpost trust init` is done once per
    /// node, with the root.json the central team hands out.
    #[command(subcommand)]
    Trust(TrustCommand),

    /// Carry signed plugins to nodes without a network
    #[command(subcommand)]
    Bundle(BundleCommand),

    /// Join the central team's fleet, and see which one this node is in
    ///
    /// A node enrols once, with a one-time token from the central team;
    /// from then on the registry knows it by its own key and its labels.
    #[command(subcommand)]
    Fleet(crate::fleet::FleetCommand),

    /// The operator's console in a browser, and the scrape for Prometheus
    ///
    /// The running node serves a console page at /console/ on api.listen:
    /// health, plugins and their updates (approve, reject), printers, the
    /// outbox (retry, drop), the telemetry consent and the last hour of
    /// labels, payments and bookings. /metrics on the same address serves
    /// Prometheus, with its own scrape token.
    #[command(subcommand)]
    Console(crate::console::ConsoleCommand),

    /// What the node ships to the centre's Prometheus, with the operator's consent
    ///
    /// Every telemetry.rollup-seconds the node rolls its figures up and,
    /// when telemetry.remote-write-url answers, ships them as Prometheus
    /// remote write; offline, it keeps them within a size and age budget.
    #[command(subcommand)]
    Telemetry(crate::console::TelemetryCommand),

    /// For vendors: make a signing key, then package, sign and publish a plugin
    #[command(subcommand)]
    Vendor(VendorCommand),

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

    /// Install or upgrade a signed plugin from a registry, an OCI registry or a bundle
    ///
    /// SOURCE is one of:
    ///   vendor/name@VERSIONS   from the registry (--registry, or the one
    ///                          `outpost trust init` set); VERSIONS is a
    ///                          requirement such as ^1.2 or =1.2.3, newest if left out
    ///   oci://host:port/repo:tag   the bytes from any OCI registry, trusted
    ///                          only if the registry's signed metadata lists them
    ///   oci://host:port/repo@sha256:HEX   the same, pinned to one manifest
    ///                          digest (a mirror copy cannot be swapped)
    ///   ./file.bundle          a bundle from `outpost bundle export`, offline
    ///
    /// The node verifies the signed metadata from its root of trust (refusing
    /// stale, rolled-back or under-signed metadata), downloads with resume,
    /// checks every byte against the signed lengths and digests, shows what
    /// the plugin asks for and installs once you agree. A running node does
    /// it itself; an upgrade then serves on probation.
    #[command(
        after_help = "Examples:\n  outpost plugin install acme/zpl-printer@^1.2\n  outpost plugin install /media/usb/zpl-printer.bundle --yes"
    )]
    Install {
        #[arg(value_name = "SOURCE")]
        spec: String,
        /// The registry URL, instead of the one set by `outpost trust init`
        #[arg(long, env = "OUTPOST_REGISTRY")]
        registry: Option<String>,
        /// From a bundle holding several plugins: which one (vendor/name[@VERSIONS])
        #[arg(long, value_name = "PLUGIN")]
        plugin: Option<String>,
        /// Approve the capabilities the plugin asks for without asking
        #[arg(short, long)]
        yes: bool,
    },

    /// List the signed releases a registry offers
    Search {
        /// Only plugins whose id contains this
        query: Option<String>,
        /// The registry URL, instead of the one set by `outpost trust init`
        #[arg(long, env = "OUTPOST_REGISTRY")]
        registry: Option<String>,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
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
    ///
    /// An update of it in flight is dropped with it, never left half done.
    Remove {
        /// The plugin id, vendor/name
        plugin: String,
        /// Also delete everything the plugin stored
        #[arg(long)]
        purge: bool,
    },

    /// Follow a version requirement from the registry: vendor/name@^1
    ///
    /// The node asks the registry every updates.check-interval-minutes (and
    /// when the network comes back) and stages newer signed releases that
    /// match; they activate within updates.window, or wait for `outpost
    /// update approve` if they ask for more than the installed version.
    #[command(after_help = "Example:\n  outpost plugin follow acme/zpl-printer@^1")]
    Follow {
        #[arg(value_name = "PLUGIN@VERSIONS")]
        spec: String,
    },

    /// Stop following the registry
    Unfollow { plugin: String },

    /// Approve the origins a plugin's configuration now names
    ///
    /// A plugin whose manifest has `origins-from-config` (a courier adapter's
    /// api-url) reaches the address the operator sets in outpost.toml, once
    /// approved: install asks, and after a change of the setting (and a
    /// restart) this does. Until then requests there are refused.
    #[command(after_help = "Example:\n  outpost plugin approve outpost/courier")]
    Approve { plugin: String },
}

#[derive(Debug, Subcommand)]
pub enum UpdateCommand {
    /// Updates in flight, what is followed, the window and the lock
    Status {
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Ask the registry now for newer releases of followed plugins
    Check {
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Activate a staged or deferred update now, whatever the window or lock
    Apply { plugin: String },
    /// Grant what a held update asks for, and activate it now
    Approve { plugin: String },
    /// Drop a staged, held or deferred update
    Reject {
        plugin: String,
        /// Let a later check offer the same version again (by default it is
        /// blocked until a newer one appears)
        #[arg(long)]
        again: bool,
    },
    /// Go back to the previous version (and its data) of a plugin on probation
    ///
    /// The version is blocked: a check does not offer it again. Once a
    /// version is confirmed its previous version is no longer kept.
    Rollback { plugin: String },
    /// What happened to updates, oldest first
    History {
        /// Only this plugin's
        plugin: Option<String>,
        /// At most this many lines
        #[arg(long, default_value_t = 50)]
        limit: u64,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
}

/// A JSON input file and the plugin to send it to.
#[derive(Debug, Args)]
pub struct TradeInput {
    /// The JSON input; standard input without it or with `-`
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Use this plugin instead of the default for its kind
    #[arg(long, value_name = "PLUGIN")]
    pub plugin: Option<String>,
    /// Print the API's JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ForecastCommand {
    /// How accurate forecasts for this shop have been
    ///
    /// Replays the last weeks of the sales file: for each of --origins
    /// weeks, forecasts --horizon days from the history before it (at most
    /// a year) through the node's forecaster, as if on that morning, and
    /// compares with what then sold. Prints each week's MASE (mean absolute
    /// error over the history's typical week-to-week change: below 1 is
    /// better than "same as last week"), the same for "same weekday last
    /// week" itself, and how often the interval held the outcome.
    #[command(
        after_help = "Example:\n  outpost forecast backtest --csv loaves.csv --calendar shop.toml"
    )]
    Backtest {
        /// Sales as `date,quantity` lines
        #[arg(long, value_name = "FILE")]
        csv: PathBuf,
        /// The shop's opening days and events (see `outpost forecast --help`)
        #[arg(long, value_name = "FILE")]
        calendar: Option<PathBuf>,
        /// Days forecast from each origin
        #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u32).range(1..=366))]
        horizon: u32,
        /// How many weekly origins to replay, newest last
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=104))]
        origins: u32,
        /// The interval's coverage, 0 to 1
        #[arg(long, default_value_t = 0.8)]
        coverage: f64,
        /// Use this forecaster instead of the default
        #[arg(long, value_name = "PLUGIN")]
        plugin: Option<String>,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List entries, newest first, with counts per state
    List {
        /// Only entries in this state
        #[arg(long, value_parser = ["pending", "delivered", "dead", "dropped"])]
        state: Option<String>,
        /// At most this many entries
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: u64,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show one entry: its payload, attempts and the last answer
    Show {
        id: u64,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Put a dead entry back in line, due now, with its attempts reset
    Retry { id: u64 },
    /// Give up on an entry: its payload is deleted, its key stays used
    Drop { id: u64 },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a random 256-bit key for a plugin, or import one
    ///
    /// Fleets that must make the same card tokens on every node import the
    /// same key everywhere: FILE holds 64 hex digits (`-` for standard input).
    #[command(after_help = "Example:\n  outpost keys add outpost/card-tokenizer card-token")]
    Add {
        /// The plugin id, vendor/name (it need not be installed yet)
        plugin: String,
        /// The key's name, as the plugin's manifest grants it
        name: String,
        /// Import the key from FILE instead of generating one
        #[arg(long, value_name = "FILE")]
        import: Option<PathBuf>,
        /// Replace an existing key (every token made with the old one changes)
        #[arg(long)]
        replace: bool,
    },
    /// List keys (names, origins and dates; never the key material)
    List {
        /// Only this plugin's keys
        plugin: Option<String>,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Remove a key; what it sealed can no longer be opened
    Remove { plugin: String, name: String },
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Trust ROOT (the central team's root.json) for everything installed from now on
    Init {
        root: PathBuf,
        /// The registry to install from by default (https://, or http:// on this machine)
        #[arg(long, env = "OUTPOST_REGISTRY")]
        registry: Option<String>,
        /// The fleet's CA certificate (PEM), when the registry's HTTPS
        /// certificate is not from a public CA; the system's roots are
        /// trusted as well
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Show the root of trust and the newest metadata accepted
    Show,
    /// Fetch and verify the registry's newest metadata now
    Update {
        /// The registry URL, instead of the one set by `outpost trust init`
        #[arg(long, env = "OUTPOST_REGISTRY")]
        registry: Option<String>,
        /// Forget the clock reading recorded at the last refresh first. For
        /// a refresh made while the clock ran ahead: the node then refuses
        /// every later one ("System time stepped backward") until the clock
        /// passes that reading again. Use it once the clock is right.
        #[arg(long)]
        clock_was_wrong: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Write releases and the metadata that signs them to one file
    ///
    /// Run on a connected machine with a node provisioned with the same root
    /// (`outpost trust init`); everything is verified before it is written.
    /// Carry the file to the offline node and `outpost plugin install FILE`.
    #[command(
        after_help = "Example:\n  outpost bundle export acme/zpl-printer@^1.2 -o /media/usb/zpl-printer.bundle"
    )]
    Export {
        /// vendor/name@VERSIONS, one or more
        #[arg(required = true, value_name = "PLUGIN")]
        plugins: Vec<String>,
        /// The bundle file to write
        #[arg(short, long)]
        output: PathBuf,
        /// The registry URL, instead of the one set by `outpost trust init`
        #[arg(long, env = "OUTPOST_REGISTRY")]
        registry: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum VendorCommand {
    /// Make a plugin crate for KIND that builds, tests and passes the checks
    ///
    /// The crate pins outpost-sdk to this node's version, pins the toolchain
    /// and the wasm32-wasip2 target, stubs every function of the world,
    /// holds example inputs for `outpost call` in examples/, native unit
    /// tests (an in-memory host) and sandbox tests (a real node), and keeps
    /// the plugin's version in Cargo.toml only.
    #[command(
        after_help = "Example:\n  outpost vendor new printer-driver acme/zpl-printer\n  cd zpl-printer && cargo test && outpost vendor check"
    )]
    New {
        /// printer-driver, payment-tokenizer, courier-adapter or forecaster
        kind: crate::vendor::Kind,
        /// The plugin id: your namespace and the plugin's name, acme/zpl-printer
        id: String,
        /// The folder to make (default: the plugin's name)
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Outpost's sdk folder in a source checkout, for an SDK that is not
        /// on crates.io (default: the tree this outpost was built from, if
        /// it is still there)
        #[arg(long, value_name = "FOLDER", env = "OUTPOST_SDK_PATH")]
        sdk_path: Option<PathBuf>,
    },
    /// Build a plugin crate into a package folder and check it
    ///
    /// Builds for wasm32-wasip2 in release, then writes the package
    /// (default target/outpost/package): the component, plugin.toml with the
    /// version and component file name from Cargo.toml, and assets/.
    Package {
        /// The plugin crate
        #[arg(default_value = ".")]
        folder: PathBuf,
        /// The package folder to write
        #[arg(long)]
        out: Option<PathBuf>,
        /// Cargo's target folder
        #[arg(long)]
        target_dir: Option<PathBuf>,
        /// Show cargo's output only when the build fails
        #[arg(long)]
        quiet: bool,
    },
    /// Run a node's install checks on a plugin crate or package, offline
    ///
    /// The world it exports, what it imports against what plugin.toml
    /// grants, the versions in Cargo.toml, plugin.toml and info() agreeing,
    /// and limits and grants within a default node's policy. No node or
    /// network is needed; `vendor publish` runs the same checks first.
    Check {
        /// A plugin crate (packaged first) or a package folder
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Let limits and grants above a default node's policy pass, with a
        /// warning: for plugins meant only for nodes whose operators raised it
        #[arg(long)]
        beyond_default_policy: bool,
    },
    /// Rebuild and reload the plugin into a local node on every change
    ///
    /// Watches src/, assets/, Cargo.toml and plugin.toml; after a change,
    /// packages, checks and installs into the node at --data-dir (the
    /// running one, or in-process). The same version rebuilt replaces the
    /// installed one, its data kept; a new version goes through migrate.
    #[command(
        after_help = "Example:\n  outpost --data-dir /tmp/dev-node vendor watch\n  outpost --data-dir /tmp/dev-node call acme/zpl-printer render-label @examples/render-label.json"
    )]
    Watch {
        /// The plugin crate
        #[arg(default_value = ".")]
        folder: PathBuf,
        /// How often to look for changes, in milliseconds
        #[arg(long, default_value_t = 500)]
        every_ms: u64,
    },
    /// Run a package in a throwaway node for tests (the test-kit drives it)
    #[command(hide = true)]
    Sandbox(crate::vendor::sandbox::SandboxArgs),
    /// Make a signing key: FILE (private, keep it secret) and FILE.pub.json
    ///
    /// Send FILE.pub.json to the central team; they delegate your namespace
    /// to it. Every release you publish is signed with FILE.
    Keygen { file: PathBuf },
    /// Check, sign and publish the plugin in PACKAGE (a crate or a package)
    ///
    /// A plugin crate is packaged first (`vendor package`). Runs every check
    /// of `vendor check` before anything leaves the machine, then pushes the
    /// component, plugin.toml and assets as an OCI artifact, signs your
    /// namespace's next release metadata with --key and sends it. The plugin
    /// id's namespace must be the one your token and key are for; a
    /// published version never changes.
    #[command(
        after_help = "Example:\n  outpost vendor publish --registry https://registry.example:7272 --key ~/.config/outpost/acme.key"
    )]
    Publish {
        /// A plugin crate, or a package folder (plugin.toml, the component, assets/)
        #[arg(default_value = ".")]
        package: PathBuf,
        /// The registry URL
        #[arg(long, env = "OUTPOST_REGISTRY")]
        registry: String,
        /// Your private signing key; repeat if your namespace needs several
        #[arg(long = "key", required = true, env = "OUTPOST_VENDOR_KEY")]
        keys: Vec<PathBuf>,
        /// Your registry token (better: the OUTPOST_REGISTRY_TOKEN variable)
        #[arg(long, env = "OUTPOST_REGISTRY_TOKEN", hide_env_values = true)]
        token: String,
        /// The registry's CA certificate (PEM), when its HTTPS certificate
        /// is not from a public CA
        #[arg(long, value_name = "FILE", env = "OUTPOST_REGISTRY_CA")]
        registry_ca: Option<PathBuf>,
        /// How long the signed metadata stays valid: 8760h is a year
        #[arg(long, default_value = "8760h")]
        valid_for: jiff::SignedDuration,
        /// Publish even though its limits or grants are above a default
        /// node's policy (only nodes whose operators raised it install it)
        #[arg(long)]
        beyond_default_policy: bool,
    },
}
