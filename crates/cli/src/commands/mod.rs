pub mod catalogue;
pub mod estimate;
