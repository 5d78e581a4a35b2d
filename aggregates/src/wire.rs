//! Wire names, spelled once: the text each value of a closed domain enum has in the API, in
//! events and in the read models (the same as its serde name).

/// `wire_names!(Enum { Variant => "text", … })` gives `Enum::ALL`, `as_str` and `parse`.
#[macro_export]
macro_rules! wire_names {
    ($enum:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $enum {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }

            /// `must be a, b or c`: the message for a value that is none of them.
            pub fn expected() -> String {
                let names = [$($text),+];
                match names.split_last() {
                    Some((last, [])) => format!("must be {last}"),
                    Some((last, rest)) => format!("must be {} or {last}", rest.join(", ")),
                    None => String::new(),
                }
            }
        }
    };
}
