--- Signing and crypto primitives (C, OpenSSL 3). See docs/crypto.md.
require "wxhw.errors" -- gives C-made errors their __tostring
return require("wxhw.core").crypto
