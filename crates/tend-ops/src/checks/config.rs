//! (being written)

use crate::check::Check;

pub static CHECKS: &[Check] = &[];
