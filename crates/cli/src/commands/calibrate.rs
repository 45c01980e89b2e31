//! `vramplan calibrate`: not built yet (see the project's issues).

use crate::Failure;
use clap::Args;

#[derive(Args)]
pub struct CalibrateArgs {}

pub fn run(_a: CalibrateArgs) -> Result<(), Failure> {
    Err(Failure::runtime("`vramplan calibrate` is not built yet"))
}
