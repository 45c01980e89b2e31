//! `vramplan inspect`: not built yet (see the project's issues).

use crate::Failure;
use clap::Args;

#[derive(Args)]
pub struct InspectArgs {}

pub fn run(_a: InspectArgs) -> Result<(), Failure> {
    Err(Failure::runtime("`vramplan inspect` is not built yet"))
}
