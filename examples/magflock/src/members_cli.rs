//! `magflock members`: platform roles (who may manage keys, agents, members and schema over
//! `/platform/v1`). It writes the table the running server reads on every request, so a
//! change takes effect on the next request, with or without the server running. The operator
//! at the console acts as the owner; the guard rails still hold (the last owner stays).

use std::sync::Arc;

use magmobo::prelude::*;
use magmobo::roles::platform::Access;
use magmobo::roles::platform::store::PlatformStore;

use crate::MembersCommand;
use crate::commands::{Failure, load, storage};

/// `mf_<id>` (a key's visible prefix) is accepted for `key:<id>`.
fn subject(text: &str) -> String {
    match text.strip_prefix("mf_") {
        Some(id) => format!("key:{id}"),
        None => text.to_owned(),
    }
}

pub(crate) async fn run(project: &std::path::Path, command: MembersCommand) -> Result<(), Failure> {
    let server = match &command {
        MembersCommand::List { server }
        | MembersCommand::Grant { server, .. }
        | MembersCommand::Revoke { server, .. } => server,
    };
    let loaded = load(project, server)?;
    let db: Arc<dyn Storage> = Arc::new(storage(&loaded)?);
    let store = PlatformStore::new(db);
    store.install().await?;
    let by = Access::service();
    match command {
        MembersCommand::List { server } => {
            let members = store.members().await?;
            if server.json {
                for m in &members {
                    say!("{}", serde_json::to_string(m)?);
                }
            } else if members.is_empty() {
                say!(
                    "No members yet. Make yourself owner: magflock members grant key:<your key id> owner"
                );
            } else {
                say!("{:<50} {:<16} GRANTED BY", "SUBJECT", "ROLE");
                for m in &members {
                    say!(
                        "{:<50} {:<16} {}",
                        m.subject,
                        m.role,
                        m.granted_by.as_deref().unwrap_or("-")
                    );
                }
            }
            Ok(())
        }
        MembersCommand::Grant {
            subject: s, role, ..
        } => {
            let member = store.grant(&by, &subject(&s), &role).await?;
            say!(
                "{} is now {}. It takes effect on the next request.",
                member.subject,
                member.role
            );
            Ok(())
        }
        MembersCommand::Revoke { subject: s, .. } => {
            let member = store.revoke(&by, &subject(&s)).await?;
            say!(
                "{} no longer holds {}. It takes effect on the next request.",
                member.subject,
                member.role
            );
            Ok(())
        }
    }
}
