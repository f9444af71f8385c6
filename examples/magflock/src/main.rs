//! `magflock`: the reference server built with MagMoBo, and its command line.
//!
//! Built only from MagMoBo's public API, the way a user builds their own board: a hyper CPU,
//! an SQL storage chosen by URL, the API-key PSU and the MagGate REST extension.

// First, so that `say!` is in scope in the modules below.
#[macro_use]
mod out;
mod agents_cli;
mod attack;
mod commands;
mod logs;
mod members_cli;
mod postgrest_config;
mod scan;
mod settings;
mod sql_split;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  magflock init todo                      create ./todo with a database and two API keys
  magflock --project todo sql \"create table notes (id integer primary key, body text)\"
  magflock --project todo start           serve http://127.0.0.1:8080/rest/v1/notes
  magflock start --database-url postgres://postgres@127.0.0.1/app
  magflock keys create --name ci --role service_role";

/// MagFlock: an instant, safe REST backend over SQLite, PostgreSQL or MariaDB.
#[derive(Debug, Parser)]
#[command(name = "magflock", version, after_help = EXAMPLES)]
struct Cli {
    /// Project folder to act on (default: the current folder).
    #[arg(long, global = true, env = "MAGFLOCK_PROJECT", value_name = "DIR")]
    project: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a project folder with a commented magflock.toml, an SQLite database and keys.
    #[command(
        after_help = "Example:\n  magflock init todo\n  magflock init todo --json | jq -r .anon_key"
    )]
    Init {
        /// Name of the folder to create.
        name: PathBuf,
        /// Print one JSON object (with anon_key and service_role_key) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Boot the server with the POST screen and serve until Ctrl-C or SIGTERM.
    #[command(
        after_help = "Examples:\n  magflock start\n  magflock start --listen 0.0.0.0:8080 --database-url postgres://postgres@127.0.0.1/app"
    )]
    Start(ServerArgs),
    /// Run SQL against the project's database with the owner's rights (argument or stdin).
    #[command(
        after_help = "Examples:\n  magflock sql \"create table notes (id integer primary key, body text)\"\n  magflock sql < schema.sql"
    )]
    Sql {
        /// The statements; read from standard input when absent.
        statement: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Run the power-on self-test without serving.
    #[command(
        after_help = "Example:\n  magflock doctor --database-url postgres://postgres@127.0.0.1/app"
    )]
    Doctor(ServerArgs),
    /// Print the effective configuration (secrets masked) and where each value came from.
    #[command(
        after_help = "Examples:\n  magflock config\n  MAGFLOCK_LISTEN=0.0.0.0:8080 magflock config --json"
    )]
    Config {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Create, list and revoke API keys.
    #[command(
        subcommand,
        after_help = "Examples:\n  magflock keys create --name ci --role service_role\n  magflock keys list\n  magflock keys revoke mf_3f9c2a1b7d4e"
    )]
    Keys(KeysCommand),
    /// AI agents: service accounts with grants, approval rules and a rate limit; approve or
    /// reject their parked operations.
    #[command(
        subcommand,
        after_help = "Examples:\n  magflock agents create --name reporter --grant orders:select\n  magflock agents tickets --status pending\n  magflock agents approve <ticket>"
    )]
    Agents(AgentsCommand),
    /// Platform roles: who may manage keys, agents, members and schema over /platform/v1.
    #[command(
        subcommand,
        after_help = "Examples:\n  magflock members grant key:3f9c2a1b7d4e owner\n  magflock members list\n  magflock members revoke user:5b0c...\n\nRoles: owner, admin, developer, viewer, or a custom role defined over the API."
    )]
    Members(MembersCommand),
    /// Sentinel tools.
    #[command(
        subcommand,
        after_help = "Example:\n  echo \"1' OR '1'='1\" | magflock sentinel scan"
    )]
    Sentinel(SentinelCommand),
    /// Attack a running server (SQL injection, scanner burst, key brute force, bulk read)
    /// and report what was blocked, throttled or only logged; non-zero exit when a defense
    /// did not hold.
    #[command(
        after_help = "Run it against this project's server, started in another terminal:\n  magflock start &\n  magflock test\n  magflock test --url http://127.0.0.1:8080 --table notes --json\n\nIt creates a temporary API key in the project's database and revokes it at the end.\nThe threat analyzer may block your address for a while afterwards, as it would an attacker."
    )]
    Test {
        /// The server's base URL (default: http:// + the configured listen address).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Table to aim at (default: the first table the API lists).
        #[arg(long)]
        table: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Read the audit log: blocked attacks, rejected keys, extension changes.
    #[command(
        after_help = "Examples:\n  magflock logs --kind threat --since 1h\n  magflock logs --follow --json\n  magflock logs --verify"
    )]
    Logs(LogsArgs),
}

#[derive(Debug, Subcommand)]
enum AgentsCommand {
    /// Create an agent and its API key (printed once).
    #[command(
        after_help = "Examples:\n  magflock agents create --name reporter --grant orders:select\n  magflock agents create --name janitor --grant todos:select,update,delete:id,title,done \\\n      --rows todos:owner=janitor --approve delete --approve 'update>10@todos' --rate 5/20\n\n--grant TABLE:OPERATIONS[:COLUMNS]   operations: select, insert, update, delete\n--rows TABLE:COLUMN=VALUE[|VALUE]     rows the grant is limited to\n--approve OP[>ROWS][@TABLE]           operations parked until a human approves\n--rate PER_SECOND/BURST               the agent's own rate limit"
    )]
    Create {
        /// Letters, digits, '-' or '_'.
        #[arg(long)]
        name: String,
        /// A table grant (repeat for more tables).
        #[arg(long, value_name = "TABLE:OPS[:COLUMNS]")]
        grant: Vec<String>,
        /// Limit a granted table to rows where a column has one of the values.
        #[arg(long, value_name = "TABLE:COLUMN=VALUES")]
        rows: Vec<String>,
        /// An approval rule (repeat for more).
        #[arg(long, value_name = "OP[>ROWS][@TABLE]")]
        approve: Vec<String>,
        /// Requests per second and burst.
        #[arg(long, value_name = "PER_SECOND/BURST")]
        rate: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List agents and their grants.
    #[command(after_help = "Examples:\n  magflock agents list\n  magflock agents list --json")]
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Revoke an agent and its key.
    #[command(after_help = "Example:\n  magflock agents revoke reporter")]
    Revoke {
        /// The agent's name.
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List parked operations (tickets).
    #[command(after_help = "Example:\n  magflock agents tickets --status pending")]
    Tickets {
        /// pending, approved, executing, executed, rejected or expired.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Approve a ticket; it runs when the agent next polls it.
    #[command(after_help = "Example:\n  magflock agents approve 0b7e...-...  --by alice")]
    Approve {
        /// The ticket id.
        ticket: String,
        /// Who approves (recorded on the ticket).
        #[arg(long, default_value = "cli")]
        by: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Reject a ticket; nothing is run.
    #[command(after_help = "Example:\n  magflock agents reject 0b7e...-... --by alice")]
    Reject {
        /// The ticket id.
        ticket: String,
        /// Who rejects (recorded on the ticket).
        #[arg(long, default_value = "cli")]
        by: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
enum SentinelCommand {
    /// Judge values (one per line on stdin) or requests (`--requests`, one JSON per line).
    #[command(
        after_help = "Output: one line per input, `attack <confidence> <agent>` or `benign <confidence>`.\n\nExamples:\n  echo \"1' OR '1'='1\" | magflock sentinel scan\n  echo '{\"method\":\"GET\",\"path\":\"/rest/v1/users\",\"query\":{\"id\":\"eq.1 union select 1\"}}' | magflock sentinel scan --requests"
    )]
    Scan {
        /// Read one JSON request per line: method, path, query, headers, body.
        #[arg(long)]
        requests: bool,
    },
}

#[derive(Debug, Clone, Args)]
struct LogsArgs {
    /// Only kinds starting with this, e.g. `threat` or `auth.key`.
    #[arg(long)]
    kind: Option<String>,
    /// Only this identity (key id, user id).
    #[arg(long)]
    identity: Option<String>,
    /// Only this source address.
    #[arg(long)]
    source: Option<String>,
    /// Only entries newer than this: 30s, 10m, 2h, 7d.
    #[arg(long, value_name = "AGE")]
    since: Option<String>,
    /// At most this many (the newest).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Keep printing new entries as they arrive.
    #[arg(long)]
    follow: bool,
    /// Check the hash chain instead of printing entries; non-zero exit when broken.
    #[arg(long)]
    verify: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Clone, Args)]
struct ServerArgs {
    /// Address to listen on [env: MAGFLOCK_LISTEN] [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Database URL: sqlite://file.db, postgres://..., mysql://... [env: MAGFLOCK_DATABASE_URL].
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Redis for the cache and a durable job queue: redis://127.0.0.1:6379 [env: MAGFLOCK_REDIS_URL].
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// Run from a PostgREST configuration file (db-uri, db-schemas, db-anon-role,
    /// jwt-secret, db-max-rows, db-tx-end, server-port...): PostgREST mode, API at `/`.
    #[arg(long, value_name = "FILE")]
    postgrest_config: Option<PathBuf>,
    /// Print machine-readable JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum MembersCommand {
    /// List members and the role each holds.
    #[command(after_help = "Examples:\n  magflock members list\n  magflock members list --json")]
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Give a subject a role (replacing the one it held). You act as the owner.
    #[command(
        after_help = "Examples:\n  magflock members grant key:3f9c2a1b7d4e owner\n  magflock members grant mf_3f9c2a1b7d4e developer\n  magflock members grant user:5b0c8c1e-... viewer"
    )]
    Grant {
        /// `key:<API key id>` (or the key's `mf_<id>` prefix) or `user:<user id>`.
        subject: String,
        /// owner, admin, developer, viewer or a custom role.
        role: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Take a subject's role away (refused for the last owner).
    #[command(after_help = "Example:\n  magflock members revoke key:3f9c2a1b7d4e")]
    Revoke {
        /// The member's subject, as `members list` shows it.
        subject: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key; its secret is printed once.
    #[command(
        after_help = "Example:\n  magflock keys create --name mobile-app --role anon --expires-in-days 90"
    )]
    Create {
        /// A name to recognise the key by.
        #[arg(long)]
        name: String,
        /// The role it acts as (anon, service_role, or your own).
        #[arg(long, default_value = "anon")]
        role: String,
        /// Days until it expires (never by default).
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List keys (never their secrets).
    #[command(after_help = "Examples:\n  magflock keys list\n  magflock keys list --json")]
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Revoke a key by its id or visible prefix (mf_...).
    #[command(after_help = "Example:\n  magflock keys revoke mf_3f9c2a1b7d4e")]
    Revoke {
        /// The key's id or prefix.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// mimalloc instead of the system allocator: a request allocates many small, short-lived
/// buffers, and glibc's malloc/free showed as about 8% of the server's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MAGFLOCK_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("magflock: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(commands::Failure::Reported) => ExitCode::FAILURE,
        Err(commands::Failure::Message(message)) => {
            eprintln!("magflock: {message}");
            ExitCode::FAILURE
        }
    }
}
