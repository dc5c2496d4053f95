//! A tiny builder for SQL composed at run time from constant fragments, with every value
//! travelling as a bind parameter (`$1`, `$2`, ... — both drivers accept them), except a
//! LIMIT (see [`limit`]).

/// A value to bind.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    I64(i64),
    Text(String),
}

/// SQL text and its arguments, numbered in order.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
    /// The LIMIT it ends with, if any: the most rows it can return.
    pub max_rows: Option<usize>,
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            args: Vec::new(),
            max_rows: None,
        }
    }

    /// Adds a value and returns its placeholder.
    pub fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    pub fn push(&mut self, fragment: &str) {
        self.text.push_str(fragment);
    }

    /// Ends the statement with ` LIMIT n`, see [`limit`].
    pub fn limit(&mut self, n: usize) {
        self.text.push_str(&limit(n));
        self.max_rows = Some(n);
    }
}

/// ` LIMIT n`, written into the SQL text: a LIMIT is never a bind parameter. SQLite plans with
/// the value of a bound LIMIT, so binding one marks the statement expired and every run
/// prepares it again (`sqlite3Reprepare`: parsing and planning on each request). A limit
/// comes from a clamped page size or a batch constant, so the texts stay few and cached.
pub(crate) fn limit(n: usize) -> String {
    format!(" LIMIT {n}")
}

/// Binds every [`Arg`] of `$args` to `$query` (for either backend).
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                $crate::sql::Arg::I64(v) => query.bind(*v),
                $crate::sql::Arg::Text(v) => query.bind(v.clone()),
            };
        }
        query
    }};
}
pub(crate) use bind_args;
