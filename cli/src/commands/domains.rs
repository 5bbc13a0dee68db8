//! `paas domains`, `domains:add`, `domains:remove`.

use anyhow::Result;
use paas_server::wire::AddDomain;
use paas_server::wire::DomainView as Domain;

use super::{app_name, client, nothing, progress};
use crate::AppArg;
use crate::client::path;

pub(crate) async fn list(arg: &AppArg) -> Result<()> {
    let name = app_name(arg)?;
    let domains: Vec<Domain> = client()?.get(&path(&["apps", &name, "domains"])?).await?;
    println!("=== {name} Custom Domains");
    if domains.is_empty() {
        println!("none; add one with `paas domains:add www.example.com`");
    }
    for domain in domains {
        println!("{}", domain.hostname);
    }
    Ok(())
}

pub(crate) async fn add(arg: &AppArg, hostname: &str) -> Result<()> {
    let name = app_name(arg)?;
    let body = AddDomain { hostname: hostname.to_string() };
    let client = client()?;
    let path = path(&["apps", &name, "domains"])?;
    let work = client.post::<Domain>(&path, &body);
    let domain = progress(&format!("Adding {hostname} to {name}"), work, nothing).await?;
    println!(
        "Point {} at this server (a DNS A/AAAA or CNAME record); the router sends it to {name}.",
        domain.hostname
    );
    Ok(())
}

pub(crate) async fn remove(arg: &AppArg, hostname: &str) -> Result<()> {
    let name = app_name(arg)?;
    let client = client()?;
    let path = path(&["apps", &name, "domains", hostname])?;
    let work = client.delete(&path);
    progress(&format!("Removing {hostname} from {name}"), work, nothing).await
}
