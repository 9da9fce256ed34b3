-- wxhw.paginate: every paging style against in-process list servers that
-- behave as the WeChat APIs document (including their quirks).
local paginate = require "wxhw.paginate"
local errors = require "wxhw.errors"
local cjson = require "cjson.safe"

local function make_list(n, prefix)
  local t = {}
  for i = 1, n do t[i] = { id = (prefix or "d") .. i } end
  return t
end

local function ids(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = v.id or v end
  return out
end

-- Pay-style offset server: total_count only on offset 0 when `total_on_first`.
local function offset_server(list, opts)
  opts = opts or {}
  local s = { calls = 0, requests = {} }
  function s.fetch(req)
    s.calls = s.calls + 1
    s.requests[#s.requests + 1] = req
    if opts.fail_at and s.calls == opts.fail_at then
      return nil, errors.new("pay", "SYSTEM_ERROR", { http_status = 500 })
    end
    if opts.mutate then opts.mutate(s.calls, list) end
    local data = {}
    for i = req.offset + 1, math.min(req.offset + req.limit, #list) do data[#data + 1] = list[i] end
    local page = { data = data, offset = req.offset, limit = req.limit }
    if not opts.no_total and (not opts.total_on_first or req.offset == 0) then page.total_count = #list end
    local nxt = req.offset + req.limit
    if nxt < #list then page.links = { next = "/v3/iotmanage/devices?offset=" .. nxt .. "&limit=" .. req.limit } end
    return page
  end
  return s
end

describe("wxhw.paginate", function()
  describe("offset style", function()
    it("lists everything in order with total_count", function()
      local list = make_list(1234)
      local srv = offset_server(list)
      local p = paginate.new{ style = "offset", limit = 100, fetch = srv.fetch }
      local got = assert(p:collect())
      assert.same(ids(list), ids(got))
      assert.equal(13, srv.calls)
      assert.same({ offset = 1200, limit = 100 }, srv.requests[13])
    end)

    it("stops on a short page when there is no total, and on an empty page after an exact multiple", function()
      local srv = offset_server(make_list(250), { no_total = true })
      local got = assert(paginate.new{ limit = 100, fetch = srv.fetch }:collect())
      assert.equal(250, #got)
      assert.equal(3, srv.calls)
      srv = offset_server(make_list(200), { no_total = true })
      got = assert(paginate.new{ limit = 100, fetch = srv.fetch }:collect())
      assert.equal(200, #got)
      assert.equal(3, srv.calls) -- the third answers with no items
    end)

    it("total = false ignores a total_count field", function()
      local list = make_list(250)
      local srv = offset_server(list)
      local calls = 0
      local got = assert(paginate.new{ limit = 100, total = false, fetch = function(req)
        calls = calls + 1
        local page = srv.fetch(req)
        page.total_count = 100 -- wrong on purpose: must not end the listing
        return page
      end }:collect())
      assert.equal(250, #got)
      assert.equal(3, calls)
    end)

    it("uses a total given only on the first page", function()
      local srv = offset_server(make_list(300), { total_on_first = true })
      local got = assert(paginate.new{ limit = 100, fetch = srv.fetch }:collect())
      assert.equal(300, #got)
      assert.equal(3, srv.calls)
    end)

    it("starts at a given offset and handles an empty list", function()
      local srv = offset_server(make_list(50))
      local got = assert(paginate.new{ limit = 20, offset = 30, fetch = srv.fetch }:collect())
      assert.equal(20, #got)
      assert.equal("d31", got[1].id)
      assert.equal("d50", got[20].id)
      srv = offset_server({})
      assert.same({}, assert(paginate.new{ limit = 20, fetch = srv.fetch }:collect()))
      assert.equal(1, srv.calls)
    end)

    it("fetches pages concurrently within fetch_many and keeps the order", function()
      local list = make_list(1050)
      local srv = offset_server(list)
      local batches = {}
      local p = paginate.new{ limit = 100, concurrency = 4, fetch = srv.fetch, fetch_many = function(reqs)
        batches[#batches + 1] = #reqs
        local out = {}
        for i = #reqs, 1, -1 do out[i] = srv.fetch(reqs[i]) end -- answered out of order
        return out
      end }
      local got = assert(p:collect())
      assert.same(ids(list), ids(got))
      assert.same({ 4, 4, 2 }, batches) -- the first page alone (the total is unknown), then 4 at a time
      assert.equal(11, srv.calls)
    end)

    it("keeps the good pages of a batch and fetches again from the failed one", function()
      local list = make_list(600)
      local srv = offset_server(list)
      local fail_once = true
      local p = paginate.new{ limit = 100, concurrency = 3, fetch = srv.fetch, fetch_many = function(reqs)
        local out = {}
        for i, r in ipairs(reqs) do
          if i == 2 and fail_once then
            fail_once = false
            out[i] = errors.new("http", "reset", { retryable = true })
          else
            out[i] = srv.fetch(r)
          end
        end
        return out
      end }
      assert.same(ids(list), ids(assert(p:collect())))
      -- page 0; batch 100,200(failed),300; batch 200,300,400; page 500
      assert.same({ 0, 100, 300, 200, 300, 400, 500 }, (function()
        local o = {}
        for i, r in ipairs(srv.requests) do o[i] = r.offset end
        return o
      end)())
    end)

    it("reports a failure of the first page of a batch", function()
      local srv = offset_server(make_list(600))
      local p = paginate.new{ limit = 100, concurrency = 3, fetch = srv.fetch, fetch_many = function(reqs)
        local out = { errors.new("http", "timeout", { retryable = true }) }
        for i = 2, #reqs do out[i] = srv.fetch(reqs[i]) end
        return out
      end }
      local got, err = p:collect()
      assert.is_nil(got)
      assert.equal("timeout", err.message)
      assert.equal(100, #err.partial)
    end)
  end)

  describe("links style", function()
    it("follows links.next until it is empty", function()
      local list = make_list(333)
      local srv = offset_server(list)
      local urls = {}
      local p = paginate.new{ style = "links", limit = 50, fetch = function(req)
        if req.url then
          urls[#urls + 1] = req.url
          local off, lim = req.url:match("offset=(%d+)&limit=(%d+)")
          return srv.fetch({ offset = tonumber(off), limit = tonumber(lim) })
        end
        return srv.fetch(req)
      end }
      assert.same(ids(list), ids(assert(p:collect())))
      assert.equal(6, #urls)
      assert.equal("/v3/iotmanage/devices?offset=300&limit=50", urls[6])
    end)
  end)

  describe("cursor style", function()
    local function cursor_server(list, per)
      local s = { calls = 0 }
      function s.fetch(req)
        s.calls = s.calls + 1
        local start = req.cursor == "" and 1 or tonumber(req.cursor:match("c(%d+)"))
        local data = {}
        for i = start, math.min(start + per - 1, #list) do data[#data + 1] = list[i] end
        local nxt = start + per <= #list and ("c" .. (start + per)) or ""
        return { errcode = 0, errmsg = "ok", userlist = data, next_cursor = nxt }
      end
      return s
    end

    it("follows next_cursor (WeCom get_userinfo_by_page)", function()
      local list = make_list(95, "u")
      local srv = cursor_server(list, 10)
      local p = paginate.new{ style = "cursor", limit = 10, items = "userlist", fetch = srv.fetch }
      assert.same(ids(list), ids(assert(p:collect())))
      assert.equal(10, srv.calls)
    end)

    it("reports a cursor that does not advance instead of looping", function()
      local p = paginate.new{ style = "cursor", items = "userlist", fetch = function()
        return { userlist = { { id = "x" } }, next_cursor = "same" }
      end, cursor = "same" }
      local got, err = p:collect()
      assert.is_nil(got)
      assert.equal("stuck", err.reason)
      assert.equal(1, #err.partial)
    end)
  end)

  describe("next_openid style", function()
    -- MP user/get: up to 10000 per page; next_openid is still set on the last page.
    local function openid_server(n, per)
      local s = { calls = 0 }
      function s.fetch(req)
        s.calls = s.calls + 1
        local start = req.next_openid == "" and 1 or tonumber(req.next_openid:match("o(%d+)")) + 1
        local ids_ = {}
        for i = start, math.min(start + per - 1, n) do ids_[#ids_ + 1] = "o" .. i end
        local page = { total = n, count = #ids_, next_openid = #ids_ > 0 and ids_[#ids_] or "o" .. n }
        if #ids_ > 0 then page.data = { openid = ids_ } end
        return page
      end
      return s
    end

    it("stops at the total although next_openid is set on the last page", function()
      local srv = openid_server(25, 10)
      local got = assert(paginate.new{ style = "next_openid", fetch = srv.fetch }:collect())
      assert.equal(25, #got)
      assert.equal("o25", got[25])
      assert.equal(3, srv.calls)
    end)

    it("stops on count 0 without data when the total is not reached", function()
      local srv = openid_server(20, 10)
      local wrong_total = function(page) return 1000 end
      local got = assert(paginate.new{ style = "next_openid", total = wrong_total, version = false,
        fetch = srv.fetch }:collect())
      assert.equal(20, #got)
      assert.equal(3, srv.calls)
    end)
  end)

  describe("change detection", function()
    it("restarts when total_count changes and never yields an item twice", function()
      local list = make_list(500)
      local srv = offset_server(list, { mutate = function(call, l)
        if call == 3 then table.insert(l, 1, { id = "new" }) end
      end })
      local restarts = 0
      local p = paginate.new{ limit = 100, fetch = srv.fetch, key = function(d) return d.id end,
        on_page = function(info) restarts = info.restarts end }
      local got = assert(p:collect())
      assert.equal(1, restarts)
      assert.equal(501, #got)
      local seen = {}
      for _, d in ipairs(got) do
        assert.is_nil(seen[d.id], "duplicate " .. d.id)
        seen[d.id] = true
      end
      assert.is_true(seen.new)
    end)

    it("reports the change when items have no key", function()
      local list = make_list(500)
      local srv = offset_server(list, { mutate = function(call, l)
        if call == 2 then l[#l + 1] = { id = "late" } end
      end })
      local got, err = paginate.new{ limit = 100, fetch = srv.fetch }:collect()
      assert.is_nil(got)
      assert.equal("state", err.kind)
      assert.equal("list_changed", err.reason)
      assert.matches("500 → 501", err.message)
      assert.equal(100, #err.partial)
    end)

    it("gives up after max_restarts on a list that keeps changing", function()
      local list = make_list(300)
      local srv = offset_server(list, { mutate = function(call, l) l[#l + 1] = { id = "x" .. call } end })
      local got, err = paginate.new{ limit = 100, fetch = srv.fetch, key = function(d) return d.id end,
        max_restarts = 2 }:collect()
      assert.is_nil(got)
      assert.equal("list_changed", err.reason)
    end)

    it("lets a function decide, with perm_version as the version", function()
      local v = 1
      local calls = 0
      local p = paginate.new{ style = "cursor", items = "list", version = "perm_version",
        on_change = function(info)
          assert.equal(1, info.was)
          assert.equal(2, info.now)
          return "continue"
        end,
        fetch = function(req)
          calls = calls + 1
          if calls == 2 then v = 2 end
          return { list = { calls }, perm_version = v, next_cursor = calls < 3 and ("c" .. calls) or "" }
        end }
      assert.same({ 1, 2, 3 }, assert(p:collect()))
    end)
  end)

  describe("checkpoints", function()
    it("resumes after the caller stops mid-page: nothing lost, nothing twice", function()
      local list = make_list(537)
      local srv = offset_server(list)
      local cp = paginate.memory_checkpoint()
      local got = {}
      for item in paginate.new{ limit = 100, fetch = srv.fetch, checkpoint = cp }:iter() do
        got[#got + 1] = item
        if #got == 250 then break end
      end
      assert.same({ offset = 200, limit = 100 }, cp.data.state.request)
      assert.equal(49, cp.data.state.index) -- item 250 was handed out but not confirmed
      -- a new process: the item in hand when it crashed is handed out again
      got[250] = nil
      for item in paginate.new{ limit = 100, fetch = srv.fetch, checkpoint = cp }:iter() do
        got[#got + 1] = item
      end
      assert.same(ids(list), ids(got))
      assert.is_true(cp.data.state.done)
      -- a finished listing resumed yields nothing
      local again = assert(paginate.new{ limit = 100, fetch = srv.fetch, checkpoint = cp }:collect())
      assert.same({}, again)
    end)

    it("ack() confirms the last item before an early break", function()
      local list = make_list(300)
      local srv = offset_server(list)
      local cp = paginate.memory_checkpoint()
      local p = paginate.new{ limit = 100, fetch = srv.fetch, checkpoint = cp }
      local got = {}
      for item in p:iter() do
        got[#got + 1] = item
        if #got == 120 then p:ack(); break end
      end
      for item in paginate.new{ limit = 100, fetch = srv.fetch, checkpoint = cp }:iter() do got[#got + 1] = item end
      assert.same(ids(list), ids(got))
    end)

    it("resumes after a failed fetch, from a file that survives the process", function()
      local path = os.tmpname()
      os.remove(path)
      local list = make_list(420)
      local srv = offset_server(list, { fail_at = 3 })
      local cp = paginate.file_checkpoint(path)
      local got, err = paginate.new{ limit = 100, fetch = srv.fetch, checkpoint = cp }:collect()
      assert.is_nil(got)
      assert.equal(500, err.http_status)
      assert.equal(200, #err.partial)
      local f = assert(io.open(path))
      local st = cjson.decode(f:read("*a"))
      f:close()
      assert.same({ offset = 200, limit = 100 }, st.request)
      local rest = assert(paginate.new{ limit = 100, fetch = srv.fetch,
        checkpoint = paginate.file_checkpoint(path) }:collect())
      local all = err.partial
      for _, d in ipairs(rest) do all[#all + 1] = d end
      assert.same(ids(list), ids(all))
      cp.clear()
      assert.is_nil(io.open(path))
    end)

    it("refuses a checkpoint of another style", function()
      local cp = paginate.memory_checkpoint({ state = { style = "cursor", request = { cursor = "x" } } })
      assert.has_error(function() paginate.new{ fetch = function() end, checkpoint = cp }:iter() end)
    end)
  end)

  describe("errors", function()
    it("yields false, err once and keeps the error", function()
      local p = paginate.new{ limit = 10, fetch = function() return nil, errors.new("pay", "boom") end }
      local n = 0
      for item, err in p:iter() do
        n = n + 1
        assert.is_false(item)
        assert.equal("boom", err.message)
      end
      assert.equal(1, n)
      assert.equal("boom", p.err.message)
    end)

    it("starts over on a second iter() without a checkpoint", function()
      local srv = offset_server(make_list(150))
      local p = paginate.new{ limit = 100, fetch = srv.fetch }
      assert.equal(150, #assert(p:collect()))
      assert.equal(150, #assert(p:collect()))
      assert.equal(150, p.yielded)
      assert.equal(2, p.pages)
    end)

    it("reports a page without an item list", function()
      local _, err = paginate.new{ limit = 10, fetch = function() return { code = "x" } end }:collect()
      assert.equal("bad_page", err.reason)
    end)

    it("raises on misuse", function()
      local f = function() end
      assert.has_error(function() paginate.new{ fetch = f, style = "pages" } end)
      assert.has_error(function() paginate.new{ style = "offset" } end)
      assert.has_error(function() paginate.new{ fetch = f, limit = 0 } end)
      assert.has_error(function() paginate.new{ fetch = f, offset = -1 } end)
      assert.has_error(function() paginate.new{ fetch = f, concurrency = 2 } end)
      assert.has_error(function() paginate.new{ fetch = f, style = "cursor", concurrency = 2, fetch_many = f } end)
      assert.has_error(function() paginate.new{ fetch = f, on_change = "panic" } end)
    end)
  end)
end)
