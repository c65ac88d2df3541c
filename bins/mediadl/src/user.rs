//! `mediadl user add|passwd|list`: account management that works while a
//! server runs on the same data.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use mediadl::model::Role;
use mediadl_server::users;

use crate::cli::{UserAction, UserArgs};

fn read_password(from_stdin: bool) -> Result<(String, bool), Box<dyn std::error::Error>> {
    if !from_stdin {
        return Ok((users::random_password(), true));
    }
    if std::io::stdin().is_terminal() {
        eprint!("password: ");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err("no password on standard input".into());
    }
    Ok((password, false))
}

pub async fn user(args: UserArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let config = args.data.load(None)?.server;
    let store = mediadl_server::open_store(&config).await?;
    match args.action {
        UserAction::Add {
            username,
            role,
            email,
            password_stdin,
        } => {
            let role: Role = role.parse()?;
            let (password, generated) = read_password(password_stdin)?;
            let user =
                users::create_user(store.as_ref(), &username, &password, role, email).await?;
            println!(
                "created {} ({}) with id {}",
                user.username,
                user.role.as_str(),
                user.id
            );
            if generated {
                println!("password: {password}");
            }
        }
        UserAction::Passwd {
            username,
            password_stdin,
        } => {
            let (password, generated) = read_password(password_stdin)?;
            let user = users::set_password(store.as_ref(), &username, &password).await?;
            println!(
                "password of {} changed; their sessions were signed out",
                user.username
            );
            if generated {
                println!("password: {password}");
            }
        }
        UserAction::List => {
            println!(
                "{:>4}  {:<24} {:<7} {:<8} last login",
                "id", "username", "role", "state"
            );
            for user in users::list_users(store.as_ref()).await? {
                println!(
                    "{:>4}  {:<24} {:<7} {:<8} {}",
                    user.id,
                    user.username,
                    user.role.as_str(),
                    if user.disabled { "disabled" } else { "active" },
                    user.last_login
                        .map_or_else(|| "never".to_owned(), |at| at.to_rfc3339())
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
