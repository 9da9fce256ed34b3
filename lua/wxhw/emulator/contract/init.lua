--- The emulator's contract: one data table per product (tokens, mp, wmpf,
-- wecom, pay) of every endpoint the emulator serves, with where the token
-- goes, the request fields (JSON type, required, limits, errcodes), the
-- response fields, the documented errcodes and the source of each fact.
-- wxhw.emulator.validate checks every request against it; docs/emulator.md's
-- endpoint reference is generated from it (wxhw.emulator.contract_md).
--
-- An entry:
--   method, path ("/v3/x/{device_sn}" for a path parameter), product,
--   token = { where = "query", param = "access_token", kinds = { mp = true },
--             wrong = errcode for a token of another kind, says = "..." }
--         | { where = "header", says = "..." } | nil (credentials in the request)
--   style = "pay" (HTTP status + code, signed) | nil (errcode JSON)
--   err = errcode for a bad field unless the field names its own (47001 default)
--   body | query = { field ... }; path_param = field
--   response = { field ... }; errcodes = { [code] = "meaning" }
--   source = where the endpoint is documented; "undocumented: chosen ..." when
--            nothing official was found; notes = { "...", ... }
-- A field: { name, type, req = true, alias = other spelling, min/max (bytes
-- of a string, items of an array), least/most (numbers), chars (Lua class of
-- allowed bytes), enum = {...}, items = field (array), fields = {...}
-- (object), values = field (every value of a map), err / err_<kind> (kind:
-- missing type len chars range enum), src = the field's own source }.
-- Types: string integer number boolean object array uint (decimal digits in
-- a query string or path).
local M = {}

M.PRODUCTS = { "tokens", "mp", "wmpf", "wecom", "pay" }

--- Every entry, in document order.
M.entries = {}
for _, name in ipairs(M.PRODUCTS) do
  for _, e in ipairs(require("wxhw.emulator.contract." .. name)) do
    e.product = e.product or name
    if e.path:find("{", 1, true) then e.prefix = e.path:match("^([^{]*)") end
    M.entries[#M.entries + 1] = e
  end
end

--- The key an entry is found under: its path, or its prefix followed by "*"
-- (the key Emu:handle computes for a prefix route).
function M.key(e) return e.prefix and (e.prefix .. "*") or e.path end

M.by_key = {}
for _, e in ipairs(M.entries) do M.by_key[M.key(e)] = e end

--- Is the entry's only source our own choice?
function M.chosen(e) return e.source:find("^undocumented: chosen") ~= nil end

return M
