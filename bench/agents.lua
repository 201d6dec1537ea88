-- wrk script for bench/run.sh: requests on behalf of many distinct agents.
--   wrk ... -s bench/agents.lua URL -- MODE FILE [LIMIT]
-- MODE poll:      GET wrk.path, "Authorization: Bearer TOKEN", no If-None-Match
--      poll304:   the same with "If-None-Match: ETAG" (FILE lines: "TOKEN ETAG")
--      heartbeat: POST /v1/heartbeat with a heartbeat body for the token's agent
--      heartbeat_health: the same with a health object (server/PROTOCOL.md):
--                 CPU, memory and per-channel counters that vary by request
--      get:       plain GET wrk.path (the blob download)
-- FILE has one agent a line ("TOKEN" or "TOKEN ETAG"); every thread takes
-- its own share and goes round it in order, so consecutive requests are from
-- different agents. With LIMIT, each thread stops after its share of LIMIT
-- requests (every agent once when LIMIT = number of lines), then creates the
-- file $FB_BENCH_DONE.<thread> and stops.
-- done() prints one JSON line: requests, duration, bytes, errors, latency.

local threads = {}
local counter = 0

function setup(thread)
	thread:set("tid", counter)
	counter = counter + 1
	table.insert(threads, thread)
end

function init(args)
	mode = args[1] or "get"
	active = os.getenv("FB_BENCH_ACTIVE") or "{}"
	caps = os.getenv("FB_BENCH_CAPS") or "[]"
	channels = {}
	for ch in active:gmatch('"(%d+)"%s*:') do
		channels[#channels + 1] = ch
	end
	local file = args[2]
	local limit = tonumber(args[3] or "0")
	local nthreads = tonumber(os.getenv("FB_BENCH_THREADS") or "1")
	reqs = {}
	if mode ~= "get" then
		local i = 0
		for line in io.lines(file) do
			if i % nthreads == tid then
				local tok, etag = line:match("^(%S+)%s*(%S*)")
				local h = {["Authorization"] = "Bearer " .. tok}
				if mode == "poll304" then
					h["If-None-Match"] = etag
				end
				if mode == "heartbeat" or mode == "heartbeat_health" then
					-- formatted below or in request()
					reqs[#reqs + 1] = tok
				else
					reqs[#reqs + 1] = wrk.format("GET", wrk.path, h)
				end
			end
			i = i + 1
		end
	else
		reqs[1] = wrk.format("GET", wrk.path)
	end
	-- The health objects, formatted once (210 variants, every value moving):
	-- formatting them per request cost the single wrk thread more than the
	-- server's parsing of them, and the figure is the server's.
	health = {}
	for v = 0, 209 do
		local per = {}
		for i, ch in ipairs(channels) do
			per[i] = '"' .. ch .. '":{"evals":' .. (1200 + v % 50) ..
				',"errors":0,"timeouts":0,"detections":' .. (v % 4) .. ',"blocks":0}'
		end
		health[v + 1] = ',"health":{"interval_s":60,"agent_cpu_p95":' .. (3 + v % 7) ..
			',"agent_cpu_mean":' .. (1 + v % 3) .. ',"host_cpu":' .. (20 + v % 30) ..
			',"agent_rss_kb":' .. (50000 + v % 1000 * 7) .. ',"channels":{' ..
			table.concat(per, ",") .. '}}'
	end
	n = #reqs
	-- Up to 200,000 agents, every heartbeat is formatted here, once: per
	-- request the one wrk thread then only hands over a string, and the
	-- figure is the server's (formatted in request(), a heartbeat with
	-- health cost the client about a quarter more than one without, and the
	-- client was the limit). Each agent's uptime and health stay the same
	-- from one round to the next. A million (the memory phase) would take
	-- 600 MB: those are formatted in request().
	preformatted = (mode == "heartbeat" or mode == "heartbeat_health") and n <= 200000
	if preformatted then
		for i = 1, n do
			reqs[i] = heartbeat(reqs[i], i)
		end
	end
	pos = 0
	sent = 0
	cap = 0
	if limit > 0 then
		cap = math.floor(limit / nthreads)
		if tid < limit % nthreads then
			cap = cap + 1
		end
	end
end

-- The heartbeat of the token's agent; k picks the uptime and the health.
function heartbeat(tok, k)
	local id = tok:match("^fa_(%d+)_")
	local body = '{"agent_id":' .. id .. ',"boot_id":"bench-' .. id .. '","uptime_s":' ..
		(3600 + k) .. ',"agent_version":"1.0.0","active":' .. active ..
		',"capabilities":' .. caps
	if mode == "heartbeat_health" then
		body = body .. health[k % #health + 1]
	end
	body = body .. '}'
	return wrk.format("POST", "/v1/heartbeat", {["Authorization"] = "Bearer " .. tok,
		["Content-Type"] = "application/json"}, body)
end

function request()
	if cap > 0 and sent >= cap and not finished then
		-- wrk's main thread sleeps for -d regardless; run.sh sees this
		-- file and ends wrk with SIGINT
		finished = true
		local f = io.open((os.getenv("FB_BENCH_DONE") or "/dev/null") .. "." .. tid, "w")
		if f then
			f:close()
		end
		wrk.thread:stop()
	end
	sent = sent + 1
	pos = pos + 1
	if pos > n then
		pos = 1
	end
	if (mode == "heartbeat" or mode == "heartbeat_health") and not preformatted then
		return heartbeat(reqs[pos], sent)
	end
	return reqs[pos]
end

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		'{"requests":%d,"duration_us":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
		'"latency_us":{"p50":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
		summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
		e.timeout, latency:percentile(50), latency:percentile(99), latency.max, latency.mean))
end
