//! Catalogs: departments, categories and zones. Every change is audited in its transaction.
//!
//! One file per catalog: `departments` (teams and their members), `categories` (with a
//! default department and urgency), `zones` (named places and the point lookup); `references`
//! holds what they share: whether a department another row points at exists, and the audited
//! delete (a foreign-key violation as [`StoreError::InUse`](crate::StoreError::InUse)).
//! Callers use the items re-exported here, as `catalog::find_zone`.

mod categories;
mod departments;
mod references;
mod zones;

pub use categories::{
    Category, create_category, delete_category, find_category, list_categories, update_category,
};
pub use departments::{
    Department, create_department, delete_department, find_department, list_departments,
    update_department,
};
pub use references::department_exists;
pub(crate) use references::{check_departments_direct, check_departments_postgres};
pub use zones::{
    Zone, create_zone, delete_zone, find_zone, list_zones, update_zone, zones_containing,
};
