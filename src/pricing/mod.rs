//! Prices: the embedded list-price table ([`table`]), model id
//! normalisation ([`model`]) and the cost of one group of tokens ([`cost`]).

pub mod cost;
pub mod model;
pub mod table;

pub use cost::{cost, PromptClass};
pub use table::PriceTable;
