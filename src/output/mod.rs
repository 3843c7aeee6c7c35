//! Output: terminal tables, JSON, CSV and hook replies. Nothing else prints
//! results.

pub mod alert_line;
pub mod csv;
pub mod hook_reply;
pub mod json;
pub mod status;
pub mod status_line;
pub mod table;

/// `12345678` -> `12,345,678`.
pub fn thousands(n: u64) -> String {
    octo_budget::money::group_thousands(n)
}

#[cfg(test)]
mod tests {
    #[test]
    fn groups_thousands() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1000), "1,000");
        assert_eq!(super::thousands(12345678), "12,345,678");
    }
}
