//! `vramplan scan`: not built yet (see the project's issues).

use crate::Failure;
use clap::Args;

#[derive(Args)]
pub struct ScanArgs {}

pub fn run(_a: ScanArgs) -> Result<(), Failure> {
    Err(Failure::runtime("`vramplan scan` is not built yet"))
}
