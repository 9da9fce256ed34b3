--- Signing and crypto primitives (C, OpenSSL 3). See docs/crypto.md.
require "wxhw.errors" -- fills the metatable C-made errors share with their methods (__tostring is C's)
return require("wxhw.core").crypto
