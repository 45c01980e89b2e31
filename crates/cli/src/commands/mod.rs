//! One module per command; each owns its clap arguments and its output.
pub mod calibrate;
pub mod catalogue;
pub mod estimate;
pub mod fit;
pub mod inspect;
pub mod plan;
pub mod scan;
pub mod serve;
pub mod simulate;
