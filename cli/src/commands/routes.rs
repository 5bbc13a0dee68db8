//! `paas routes`, `routes:add`, `routes:remove`: paths served by a process type other than
//! web.

use anyhow::Result;
use paas_server::core::AppRoute;
use paas_server::wire::AddRoute;

use super::{app_name, client, nothing, progress, table};
use crate::AppArg;
use crate::client::{encode, path};

pub(crate) async fn list(arg: &AppArg) -> Result<()> {
    let app = app_name(arg)?;
    let routes: Vec<AppRoute> = client()?.get(&path(&["apps", &app, "routes"])?).await?;
    let mut rows = vec![["PATH", "PROCESS TYPE"].map(String::from).to_vec()];
    for route in routes {
        rows.push(vec![format!("{}*", route.prefix), route.process_type]);
    }
    rows.push(vec!["everything else".into(), "web".into()]);
    print!("{}", table(&rows));
    Ok(())
}

pub(crate) async fn add(arg: &AppArg, prefix: &str, process_type: &str) -> Result<()> {
    let app = app_name(arg)?;
    let client = client()?;
    let url = path(&["apps", &app, "routes"])?;
    let body = AddRoute { prefix: prefix.to_string(), process_type: process_type.to_string() };
    let message = format!("Routing {prefix} of {app} to {process_type}");
    let route: AppRoute = progress(&message, client.post(&url, &body), nothing).await?;
    println!(
        "Requests to {}* go to {app}'s {} processes, which listen on $PORT (scale them with \
         `paas ps:scale {}=1`); the rest go to web.",
        route.prefix, route.process_type, route.process_type
    );
    Ok(())
}

pub(crate) async fn remove(arg: &AppArg, prefix: &str) -> Result<()> {
    let app = app_name(arg)?;
    let client = client()?;
    let url = format!("{}?prefix={}", path(&["apps", &app, "routes"])?, encode(prefix));
    progress(&format!("Sending {prefix} of {app} to web again"), client.delete(&url), nothing).await
}
