//! `vramplan plan`: not built yet (see the project's issues).

use crate::Failure;
use clap::Args;

#[derive(Args)]
pub struct PlanArgs {}

pub fn run(_a: PlanArgs) -> Result<(), Failure> {
    Err(Failure::runtime("`vramplan plan` is not built yet"))
}
