//! `vramplan simulate`: not built yet (see the project's issues).

use crate::Failure;
use clap::Args;

#[derive(Args)]
pub struct SimulateArgs {}

pub fn run(_a: SimulateArgs) -> Result<(), Failure> {
    Err(Failure::runtime("`vramplan simulate` is not built yet"))
}
