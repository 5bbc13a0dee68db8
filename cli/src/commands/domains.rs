//! `paas domains`, `domains:add`, `domains:remove`, `https`.

use anyhow::Result;
use paas_server::core::AppHttps;
use paas_server::wire::DomainView as Domain;
use paas_server::wire::{AddDomain, SetHttps};

use super::{app_name, client, nothing, progress};
use crate::AppArg;
use crate::client::path;

pub(crate) async fn list(arg: &AppArg) -> Result<()> {
    let name = app_name(arg)?;
    let https: AppHttps = client()?.get(&path(&["apps", &name, "https"])?).await?;
    println!("=== {name} Domains");
    print_hosts(&https);
    if !https.hosts.iter().any(|h| h.custom) {
        println!("No custom domain yet; add one with `paas domains:add www.example.com`.");
    }
    Ok(())
}

pub(crate) async fn https(arg: &AppArg, redirect: Option<bool>, hsts: Option<bool>) -> Result<()> {
    let name = app_name(arg)?;
    let client = client()?;
    let path = path(&["apps", &name, "https"])?;
    let https: AppHttps = if redirect.is_none() && hsts.is_none() {
        client.get(&path).await?
    } else {
        let body = SetHttps { redirect, hsts };
        let work = client.patch::<AppHttps>(&path, &body);
        progress(&format!("Changing HTTPS of {name}"), work, nothing).await?
    };
    println!("=== {name} HTTPS");
    print_hosts(&https);
    let on = |value: bool| if value { "on" } else { "off" };
    println!("Redirect to HTTPS: {}    HSTS: {}", on(https.redirect), on(https.hsts));
    Ok(())
}

fn print_hosts(https: &AppHttps) {
    let width = https.hosts.iter().map(|h| h.hostname.len()).max().unwrap_or(0);
    for host in &https.hosts {
        let certificate = match &host.certificate {
            _ if !https.enabled => "no HTTPS on this server".to_string(),
            Some(status) => status.describe(),
            None => "-".to_string(),
        };
        println!("{:width$}  {certificate}", host.hostname);
    }
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
