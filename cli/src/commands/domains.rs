//! `paas domains`, `domains:add`, `domains:remove`.

use anyhow::Result;
use paas_server::api::AddDomain;
use paas_store::Domain;

use super::{app_name, client};
use crate::AppArg;

pub async fn list(arg: &AppArg) -> Result<()> {
    let name = app_name(arg)?;
    let domains: Vec<Domain> = client()?.get(&format!("/apps/{name}/domains")).await?;
    println!("=== {name} Custom Domains");
    if domains.is_empty() {
        println!("none; add one with `paas domains:add www.example.com`");
    }
    for domain in domains {
        println!("{}", domain.hostname);
    }
    Ok(())
}

pub async fn add(arg: &AppArg, hostname: &str) -> Result<()> {
    let name = app_name(arg)?;
    eprint!("Adding {hostname} to {name}... ");
    let body = AddDomain { hostname: hostname.to_string() };
    match client()?.post::<Domain>(&format!("/apps/{name}/domains"), &body).await {
        Ok(domain) => {
            eprintln!("done");
            println!(
                "Point {} at this server (a DNS A/AAAA or CNAME record); the router sends it to {name}.",
                domain.hostname
            );
            Ok(())
        }
        Err(e) => {
            eprintln!("failed");
            Err(e)
        }
    }
}

pub async fn remove(arg: &AppArg, hostname: &str) -> Result<()> {
    let name = app_name(arg)?;
    eprint!("Removing {hostname} from {name}... ");
    match client()?.delete(&format!("/apps/{name}/domains/{hostname}")).await {
        Ok(()) => {
            eprintln!("done");
            Ok(())
        }
        Err(e) => {
            eprintln!("failed");
            Err(e)
        }
    }
}
