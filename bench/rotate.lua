-- wrk script for bench/run: cycles through a file of tokens, one token per request, threads starting apart.
--
--   wrk -s bench/rotate.lua URL -- TOKENS_FILE                       GET /verify, Authorization: Bearer <token>
--   wrk -s bench/rotate.lua URL -- TOKENS_FILE introspect ASSERTION  POST /oauth/v2/introspect to the IdP double
--                                                                    with a client assertion (its own latency)
--
-- Requests are built once in init(), so the client's per-request cost is the same for every target. done() prints
-- one machine-readable line: BENCH requests=... rps=... p50_us=... p99_us=... status_errors=... (latencies in µs).

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local file = args[1]
  local mode = args[2] or "verify"
  local assertion
  if mode == "introspect" then
    local f = assert(io.open(args[3], "r"))
    assertion = f:read("*l")
    f:close()
  end
  reqs = {}
  for line in io.lines(file) do
    if #line > 0 then
      if mode == "introspect" then
        -- Tokens and assertions are base64url (and dots): nothing to percent-encode.
        local body = "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
          .. "&client_assertion=" .. assertion .. "&token=" .. line
        reqs[#reqs + 1] = wrk.format("POST", "/oauth/v2/introspect",
          { ["Content-Type"] = "application/x-www-form-urlencoded" }, body)
      else
        reqs[#reqs + 1] = wrk.format("GET", "/verify", { ["Authorization"] = "Bearer " .. line })
      end
    end
  end
  n = #reqs
  if n == 0 then
    error("no tokens in " .. file)
  end
  i = ((id or 0) * 7919) % n
end

function request()
  i = i % n + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH requests=%d duration_s=%.3f rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.0f "
      .. "status_errors=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.status, e.connect, e.read, e.write, e.timeout))
end
