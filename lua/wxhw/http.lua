--- HTTP client primitive on libcurl (C): `wxhw.http.new{...}` → wxhw.Http with
-- `:request{...}`, `:batch(requests, {concurrency=N})`, `:close()`. See docs/http.md.
-- Most code wants `wxhw.transport` (picks cosockets inside nginx) or `wxhw.client`.
require "wxhw.errors" -- fills the metatable C-made errors share with their methods (__tostring is C's)
local core = require "wxhw.core"
local http = core.http
-- the library version, for User-Agent strings (wxhw.pay's, and yours)
http.version = core.version
return http
