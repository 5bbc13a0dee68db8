//! `paas ps:scale`.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};

use super::{app_name, client};
use crate::AppArg;

pub async fn scale(arg: &AppArg, changes: &[String]) -> Result<()> {
    let name = app_name(arg)?;
    let client = client()?;
    let path = format!("/apps/{name}/formation");
    if changes.is_empty() {
        let formation: BTreeMap<String, i64> = client.get(&path).await?;
        print_formation(&name, &formation);
        return Ok(());
    }
    let mut wanted = BTreeMap::new();
    for change in changes {
        let Some((process_type, quantity)) = change.split_once('=') else {
            bail!("{change:?} is not TYPE=N, like web=2");
        };
        let quantity: i64 = quantity
            .parse()
            .with_context(|| format!("{change:?}: {quantity:?} is not a number"))?;
        wanted.insert(process_type.to_string(), quantity);
    }
    eprint!("Scaling {name}... ");
    match client.patch::<BTreeMap<String, i64>>(&path, &wanted).await {
        Ok(formation) => {
            eprintln!("done");
            print_formation(&name, &formation);
            Ok(())
        }
        Err(e) => {
            eprintln!("failed");
            Err(e)
        }
    }
}

fn print_formation(name: &str, formation: &BTreeMap<String, i64>) {
    if formation.is_empty() {
        println!("{name} has no processes scaled yet");
        return;
    }
    let line: Vec<String> = formation.iter().map(|(t, n)| format!("{t}={n}")).collect();
    println!("{}", line.join(" "));
}
