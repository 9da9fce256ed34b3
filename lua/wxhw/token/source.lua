--- Turns a declarative token-source description (lua/wxhw/token/<name>.lua)
-- into a source object for the manager: `src:fetch(force)` -> token,
-- expires_in | nil, err and `src:key()` -> "<name>:<ids>:<secret hash>".
--
-- Description fields:
--   name, product ("mp"|"wecom": base URL from the client), method, path
--   query / json    request templates; "$field" is replaced by the credential
--                   `field` (a function is called each time, e.g. the latest
--                   model_ticket; a token manager gives its :token()), "$force"
--                   by the force flag
--   required        credentials that must be present
--   token_field     where the token is in the answer (expires_in beside it)
--   ids, secrets    credentials shown in the key / hashed into it
--   force_limits    { per_day =, spacing = } for explicit force_refresh
--   parent          credential holding a token manager this source calls with
--                   (its "$parent" query parameter): wxhw.client injects it and,
--                   on a token errcode, invalidates it and retries once
local crypto = require "wxhw.crypto"
local errors = require "wxhw.errors"

local M = {}

M.NAMES = {
  token = "mp_token", access_token = "mp_token",
  -- the WMPF host (mobile) app: GET /cgi-bin/token, as the official WMPF
  -- tooling gets it (nothing documents stable_token for mobile-app appids)
  stable_token = "stable_token", wmpf = "mp_token",
  wecom = "wecom_gettoken", gettoken = "wecom_gettoken",
  model_token = "wecom_model_token", device_token = "wecom_device_token",
}

local Source = {}
Source.__index = Source

-- Resolves "$name" templates; returns the filled copy, or nil, err. The
-- parent's "$<parent>" entry is left out: the client injects that token.
local function fill(template, creds, force, parent)
  if template == nil then return nil end
  local out = {}
  for k, v in pairs(template) do
    if type(v) == "string" and v:sub(1, 1) == "$" then
      local name = v:sub(2)
      if name == "force" then
        v = force and true or false
      elseif name == parent then
        v = nil
      else
        v = creds[name]
        if type(v) == "function" then v = v() end
        if v == nil or v == "" then
          return nil, errors.new("input", "token source needs `" .. name .. "` (got none)")
        end
      end
    end
    out[k] = v
  end
  return out
end

-- The query parameter that carries the parent's token ("$<parent>").
local function parent_param(desc)
  for k, v in pairs(desc.query or {}) do
    if v == "$" .. desc.parent then return k end
  end
  error("wxhw.token: source " .. desc.name .. ": no query parameter takes $" .. desc.parent, 4)
end

local function client_for(opts)
  if opts.client then return opts.client end
  local o = { base_urls = opts.base_urls, transport = opts.transport }
  if opts.base_url then o.base_urls = { mp = opts.base_url, wmpf = opts.base_url, wecom = opts.base_url } end
  return assert(require("wxhw.client").new(o))
end

--- new(name_or_description, opts): opts carries the credentials (appid,
-- secret, corpid, corpsecret, model_id, model_secret, model_ticket, device_sn,
-- device_secret, model_token) and client / base_url / base_urls / transport.
function M.new(desc, opts)
  opts = opts or {}
  if type(desc) == "string" then
    local file = M.NAMES[desc]
    if not file then error("wxhw.token: unknown token source '" .. desc .. "'", 3) end
    desc = require("wxhw.token." .. file)
  end
  local creds = opts.credentials or opts
  for _, f in ipairs(desc.required or {}) do
    if creds[f] == nil or creds[f] == "" then
      error("wxhw.token: source " .. desc.name .. " needs `" .. f .. "`", 3)
    end
  end
  local parent = desc.parent and { provider = creds[desc.parent], param = parent_param(desc) }
  return setmetatable({ desc = desc, name = desc.name, creds = creds, opts = opts, parent = parent,
                        force_limits = desc.force_limits }, Source)
end

-- The base URL the source fetches from, when it is not the platform's own.
local function other_back_end(self)
  local product, o = self.desc.product, self.opts
  local url = o.client and o.client.base_urls and o.client.base_urls[product or ""]
    or o.base_url or o.base_urls and o.base_urls[product or ""]
  if url == nil or url == require("wxhw.client").BASE_URLS[product or ""] then return nil end
  return tostring(url)
end

--- A token belongs to the back end that issued it: a store shared by the
-- host's processes must not hand an emulator's token to a client of the
-- platform, or the other way round. The platform's own key carries no URL
-- (unchanged, so hosts of two versions keep sharing one token); another
-- back end's key ends in "@" and a digest of its base URL.
function Source:key()
  local parts = { self.desc.name }
  for _, f in ipairs(self.desc.ids or {}) do parts[#parts + 1] = tostring(self.creds[f]) end
  local h = {}
  for _, f in ipairs(self.desc.secrets or {}) do h[#h + 1] = tostring(self.creds[f]) end
  if #h > 0 then parts[#parts + 1] = crypto.hex(crypto.sha256(table.concat(h, "\0"))):sub(1, 16) end
  local url = other_back_end(self)
  return table.concat(parts, ":") .. (url and "@" .. crypto.hex(crypto.sha256(url)):sub(1, 12) or "")
end

--- One upstream fetch. The client decodes the answer and its errcode
-- (wxhw.client ERRCODES); it refreshes a parent's token once on a token
-- errcode, never a token of its own (no `token = true` here: a 40001 on a
-- fetch means a wrong secret, not a stale token).
function Source:fetch(force)
  local d = self.desc
  local parent = d.parent
  local query, err = fill(d.query, self.creds, force, parent)
  if err then return nil, err end
  local json
  json, err = fill(d.json, self.creds, force, parent)
  if err then return nil, err end
  self.client = self.client or client_for(self.opts)
  local data
  data, err = self.client:call{ product = d.product, method = d.method, path = d.path, query = query, json = json,
                                token = self.parent }
  if not data then return nil, err end
  local tok = data[d.token_field]
  if type(tok) ~= "string" or tok == "" then
    return errors.fail("token", d.name .. ": the answer has no " .. d.token_field)
  end
  return tok, tonumber(data.expires_in) or 7200
end

function Source:__tostring() return "wxhw token source " .. self:key() end

return M
