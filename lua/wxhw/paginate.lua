--- One pagination framework for every WeChat listing (docs/paginate.md).
--
-- Styles (how the next page is asked for, and when the list ends):
--   offset       {offset, limit} → items, total_count      (Pay /v3/iotmanage/devices)
--   links        first {offset, limit}, then {url = links.next} until it is empty
--   cursor       {cursor, limit} → items, next_cursor       (WeCom get_userinfo_by_page)
--   next_openid  {next_openid} → data.openid, total, count   (MP user/get: next_openid is
--                still set on the last page, so the end is count == 0 or total reached)
--
--   local p = paginate.new{ style = "offset", limit = 100, fetch = function(req) ... end,
--                           key = function(item) return item.device_sn end }
--   for item, err in p:iter() do ... end     -- on failure: one (false, err), then the end
--   local all, err = p:collect()
--
-- Options: items (field name or function(page)), total (field or function),
-- version (function(page) → value whose change means the list changed while
-- being paged; default: the total), on_change ("restart" | "error" |
-- function(info) → "restart"|"error"|"continue"), max_restarts (3), key
-- (function(item) → id: never yields an id twice, also across restarts),
-- concurrency + fetch_many (offset style: pages fetched N at a time once the
-- total is known), checkpoint ({load = fn → state, save = fn(state)}, see
-- paginate.file_checkpoint), on_page(info) for progress.
local json = require "wxhw.json"
local errors = require "wxhw.errors"
local fileio = require "wxhw.fileio"

local M = {}

local STYLES = { offset = true, links = true, cursor = true, next_openid = true }

local function field(spec, default)
  if spec == nil then spec = default end
  if type(spec) == "function" then return spec end
  if spec == false then return function() return nil end end
  return function(page) return page[spec] end
end

local function present(v)
  return v ~= nil and v ~= json.null and v ~= ""
end

local function openids(page)
  local d = page.data
  return type(d) == "table" and d.openid or nil
end

local Pager = {}
Pager.__index = Pager

function M.new(o)
  if type(o) ~= "table" then error("paginate.new: options table required", 2) end
  local style = o.style or "offset"
  if not STYLES[style] then error("paginate.new: unknown style " .. tostring(style), 2) end
  if type(o.fetch) ~= "function" then error("paginate.new: fetch must be a function(request)", 2) end
  local limit = o.limit
  if limit ~= nil and (type(limit) ~= "number" or limit < 1 or limit ~= math.floor(limit)) then
    error("paginate.new: limit must be a positive integer", 2)
  end
  local offset = o.offset or 0
  if type(offset) ~= "number" or offset < 0 or offset ~= math.floor(offset) then
    error("paginate.new: offset must be a non-negative integer", 2)
  end
  local conc = o.concurrency or 1
  if type(conc) ~= "number" or conc < 1 or conc ~= math.floor(conc) then
    error("paginate.new: concurrency must be a positive integer", 2)
  end
  if conc > 1 and style ~= "offset" then error("paginate.new: concurrency needs the offset style", 2) end
  if conc > 1 and type(o.fetch_many) ~= "function" then
    error("paginate.new: concurrency needs fetch_many(requests)", 2)
  end
  local total_default = style == "next_openid" and "total" or "total_count"
  local self = setmetatable({
    style = style, fetch = o.fetch, fetch_many = o.fetch_many, concurrency = conc,
    limit = limit, offset = offset, cursor = o.cursor, next_openid = o.next_openid,
    items = field(o.items, style == "next_openid" and openids or "data"),
    total = field(o.total, total_default),
    next_cursor = field(o.next_cursor, "next_cursor"),
    key = o.key, checkpoint = o.checkpoint, on_page = o.on_page,
    max_restarts = o.max_restarts or 3,
    restarts = 0, pages = 0, yielded = 0,
  }, Pager)
  self.version = o.version and field(o.version) or self.total
  local oc = o.on_change
  if oc == nil then oc = o.key and "restart" or "error" end
  if oc ~= "restart" and oc ~= "error" and oc ~= "continue" and type(oc) ~= "function" then
    error("paginate.new: on_change must be restart, error, continue or a function", 2)
  end
  self.on_change = oc
  return self
end

-- The request for the first page.
function Pager:first_request()
  local s = self.style
  if s == "offset" or s == "links" then return { offset = self.offset, limit = self.limit } end
  if s == "cursor" then return { cursor = self.cursor or "", limit = self.limit } end
  return { next_openid = self.next_openid or "" }
end

-- Given the request and its page, the request for the following page, or nil
-- at the end. `n` is the number of items the page held; `seen` how many the
-- listing has produced including this page.
function Pager:next_request(req, page, n, seen)
  local s = self.style
  if s == "offset" then
    if n == 0 then return nil end
    local nxt = req.offset + n
    local total = self.total(page) or self.known_total
    if type(total) == "number" then
      if nxt >= total then return nil end
    elseif req.limit and n < req.limit then
      return nil
    end
    return { offset = nxt, limit = req.limit }
  elseif s == "links" then
    local links = page.links
    local nxt = type(links) == "table" and links.next or nil
    if not present(nxt) or n == 0 then return nil end
    if nxt == req.url then return nil, "links.next repeats the current page" end
    return { url = nxt }
  elseif s == "cursor" then
    local c = self.next_cursor(page)
    if not present(c) then return nil end
    if page.has_more == false or page.has_more == 0 then return nil end
    if c == req.cursor then return nil, "next_cursor did not advance" end
    return { cursor = c, limit = req.limit }
  else -- next_openid
    local c = page.next_openid
    local total = self.total(page)
    if n == 0 or page.count == 0 or not present(c) then return nil end
    if type(total) == "number" and seen >= total then return nil end
    if c == req.next_openid then return nil, "next_openid did not advance" end
    return { next_openid = c }
  end
end

local function changed_error(self, info)
  return errors.new("state", string.format("the list changed while being paged (%s %s → %s) after %d restart(s)",
    info.what, tostring(info.was), tostring(info.now), self.restarts), { reason = "list_changed" })
end

-- Decides what a version change means. Returns "restart", "continue" or nil, err.
function Pager:changed(was, now)
  local info = { what = "version", was = was, now = now, restarts = self.restarts }
  local action = self.on_change
  if type(action) == "function" then action = action(info) end
  if action == "continue" then return "continue" end
  if action == "restart" and self.restarts < self.max_restarts then
    self.restarts = self.restarts + 1
    return "restart"
  end
  return nil, changed_error(self, info)
end

function Pager:save(done)
  if not self.checkpoint then return end
  local st = self.state
  local ok, err = self.checkpoint.save({ style = self.style, request = st.req, index = st.index,
    yielded = self.yielded, version = self.base_version, done = done or nil })
  if ok == nil and err then self.save_error = err end
end

-- Fetches the pages for `reqs` (one, or several at once when concurrent).
function Pager:fetch_pages(reqs)
  if #reqs == 1 then
    local page, err = self.fetch(reqs[1])
    return { page or err }
  end
  return self.fetch_many(reqs)
end

local function bad_page(req)
  return errors.new("state", "page is not a table with an item list (request " .. json.encode(req) .. ")",
    { reason = "bad_page" })
end

-- Loads the next page(s) into the buffer. Returns true, false at the end, or
-- nil, err.
function Pager:load()
  local st = self.state
  if not st.req then return false end
  local reqs = { st.req }
  -- concurrency: once the total is known, the next offsets are known too
  if self.concurrency > 1 and self.known_total and st.req.limit then
    local off = st.req.offset + st.req.limit
    while #reqs < self.concurrency and off < self.known_total do
      reqs[#reqs + 1] = { offset = off, limit = st.req.limit }
      off = off + st.req.limit
    end
  end
  local results = self:fetch_pages(reqs)
  local queue = {}
  for i, req in ipairs(reqs) do
    local page = results[i]
    if errors.is(page) or page == nil then
      if i == 1 then return nil, page or errors.new("state", "fetch returned nothing", { reason = "bad_page" }) end
      break -- the pages before it are good; the failed one is fetched again next time
    end
    local items = type(page) == "table" and self.items(page) or nil
    if type(items) ~= "table" then
      if type(page) == "table" and (self.style == "next_openid" and (page.count == 0 or page.data == nil)) then
        items = {}
      else
        return nil, bad_page(req)
      end
    end
    queue[#queue + 1] = { req = req, page = page, items = items }
  end
  self.queue = queue
  return true
end

-- Moves to the next page in the queue (or fetches). Returns true, false at the
-- end, or nil, err.
function Pager:advance()
  local st = self.state
  while true do
    if not self.queue or #self.queue == 0 then
      local ok, err = self:load()
      if not ok then return ok, err end
    end
    local entry = table.remove(self.queue, 1)
    local page, items = entry.page, entry.items
    self.pages = self.pages + 1
    local v = self.version(page)
    if v == json.null then v = nil end
    local t = self.total(page)
    if type(t) == "number" then self.known_total = t end
    local restart = false
    if v ~= nil and self.base_version ~= nil and v ~= self.base_version then
      local action, err = self:changed(self.base_version, v)
      if not action then return nil, err end
      if action == "restart" then
        self.queue, self.known_total, self.base_version = nil, nil, nil
        st.req, st.index, st.count = self:first_request(), 0, 0
        restart = true
      end
    end
    if not restart then
      if v ~= nil and self.base_version == nil then self.base_version = v end
      st.count = (st.count or 0) + #items
      local nxt, why = self:next_request(entry.req, page, #items, st.count)
      -- a stuck cursor ends the listing with an error after this page's items
      st.stuck = why and errors.new("state", why .. "; stopping instead of looping", { reason = "stuck" }) or nil
      st.page_req, st.items, st.pos = entry.req, items, st.skip or 0
      st.skip = nil
      st.req = entry.req
      st.following = nxt
      -- a queued page must follow from this one; otherwise drop the queue
      if self.queue and self.queue[1] and (not nxt or nxt.offset ~= self.queue[1].req.offset) then self.queue = nil end
      if self.on_page then
        self.on_page({ page = self.pages, items = #items, fetched = st.count, yielded = self.yielded,
          total = self.known_total, request = entry.req, restarts = self.restarts })
      end
      return true
    end
  end
end

--- The iterator. Yields items; on failure yields false, err once and stops
-- (the error is also kept in p.err). Resumes from the checkpoint if any.
function Pager:iter()
  local st = { index = 0 }
  self.state, self.err, self.queue, self.seen = st, nil, nil, self.key and {} or nil
  self.restarts, self.pages, self.yielded, self.known_total, self.base_version = 0, 0, 0, nil, nil
  local finished = false
  local cp = self.checkpoint and self.checkpoint.load() or nil
  if cp and cp.style and cp.style ~= self.style then
    error("paginate: the checkpoint is for the " .. tostring(cp.style) .. " style", 2)
  end
  if cp and cp.done then
    finished = true
  elseif cp and cp.request then
    st.req, st.skip, self.yielded, self.base_version = cp.request, cp.index or 0, cp.yielded or 0, cp.version
    st.index = st.skip
  else
    st.req = self:first_request()
  end
  local started = false
  return function()
    if finished then return nil end
    if started then
      st.index = st.pos -- the caller is done with the previous item
      self:save()
    end
    started = true
    while true do
      if st.items and st.pos < #st.items then
        st.pos = st.pos + 1
        local item = st.items[st.pos]
        local k = self.seen and self.key(item)
        if k == nil or not self.seen[k] then
          if k ~= nil then self.seen[k] = true end
          self.yielded = self.yielded + 1
          return item
        end
      else
        if st.items then -- page finished: move the checkpoint to the next page
          st.req, st.items, st.index = st.following, nil, 0
          if st.stuck then
            finished = true
            self.err = st.stuck
            return false, st.stuck
          end
          if not st.req then
            finished = true
            self:save(true)
            return nil
          end
          self:save()
        end
        local ok, err = self:advance()
        if ok == false then
          finished = true
          self:save(true)
          return nil
        end
        if not ok then
          finished = true
          self.err = err
          return false, err
        end
      end
    end
  end
end

--- Confirms the item last handed out (call before breaking out of a loop
-- early, so a resumed listing starts after it rather than with it).
function Pager:ack()
  local st = self.state
  if st and st.items and st.pos then
    st.index = st.pos
    self:save()
  end
end

--- All items in a list, or nil, err (with err.partial = the items so far).
function Pager:collect()
  local out = {}
  for item, err in self:iter() do
    if item == false then
      err.partial = out
      return nil, err
    end
    out[#out + 1] = item
  end
  return out
end

--- A checkpoint kept in a JSON file, replaced atomically (fileio.write_atomic:
-- write beside, fsync, rename), so a crash leaves either the old or the new state.
function M.file_checkpoint(path)
  return {
    load = function()
      local s = fileio.read_file(path)
      if not s then return nil end
      local st = json.decode(s)
      if type(st) ~= "table" then error("paginate: checkpoint " .. path .. " is corrupt; delete it to start over", 0) end
      -- JSON numbers may come back as floats (40.0): offsets and limits are integers
      local function ints(t)
        for k, v in pairs(t) do
          if type(v) == "number" and v == math.floor(v) then t[k] = math.floor(v)
          elseif type(v) == "table" then ints(v) end
        end
      end
      ints(st)
      return st
    end,
    save = function(state)
      local ok, err = fileio.write_atomic(path, json.encode(state))
      if not ok then return errors.fail("io", "cannot save the checkpoint: " .. tostring(err.message)) end
      return true
    end,
    clear = function() os.remove(path) end,
  }
end

--- A checkpoint in a Lua table (tests, or a caller that persists it itself).
function M.memory_checkpoint(t)
  t = t or {}
  return {
    load = function() return t.state end,
    save = function(state) t.state = state; return true end,
    clear = function() t.state = nil end,
    data = t,
  }
end

return M
