//! `redirector check-config FILE`: validates a `serve` config file as
//! `serve` would read it (with this environment), and prints every key
//! with the value it resolves to and where that came from.

use std::path::PathBuf;

use anyhow::Result;

use crate::config::{Layer, origins};

#[derive(clap::Args)]
pub struct CheckConfigArgs {
    /// The config file to check.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

pub fn run(args: CheckConfigArgs) -> Result<()> {
    let flags = Layer {
        file: Some(args.file.clone()),
        ..Layer::default()
    };
    let rows = origins(|k| std::env::var(k).ok(), flags)?;
    println!("{}: ok", args.file.display());
    let width = rows.iter().map(|(k, _, _)| k.len()).max().unwrap_or(0);
    for (key, value, origin) in rows {
        let value = value.unwrap_or_else(|| "none".to_owned());
        println!("  {key:<width$}  {:<7}  {value}", origin.as_str());
    }
    Ok(())
}
