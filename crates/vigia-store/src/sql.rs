//! A tiny builder for SQL composed at run time from constant fragments, with every value
//! travelling as a bind parameter (`$1`, `$2`, ... — both drivers accept them).

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
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            args: Vec::new(),
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
