//! `vramplan serve`: not built yet (see the project's issues).

use crate::Failure;
use clap::Args;

#[derive(Args)]
pub struct ServeArgs {}

pub fn run(_a: ServeArgs) -> Result<(), Failure> {
    Err(Failure::runtime("`vramplan serve` is not built yet"))
}
