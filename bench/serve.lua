-- The URL mix of bench/serve.py for wrk: one route per run, chosen by the ROUTE variable.
-- N_USERS / N_ITEMS: ids are drawn uniformly from u0..u<N_USERS-1> and i0..i<N_ITEMS-1>.
local route = os.getenv("ROUTE") or "healthz"
local users = tonumber(os.getenv("N_USERS") or "1000")
local items = tonumber(os.getenv("N_ITEMS") or "1000")
-- dress, 連衣裙, coffee, 咖啡, shoes, 跑步鞋, lamp, 背包 (URL-encoded)
local queries = {"dress", "%E9%80%A3%E8%A1%A3%E8%A3%99", "coffee", "%E5%92%96%E5%95%A1", "shoes",
                 "%E8%B7%91%E6%AD%A5%E9%9E%8B", "lamp", "%E8%83%8C%E5%8C%85"}
-- the synthetic shop's top categories: 服裝 數碼 家居 美妝 運動 鞋靴 食品 母嬰 (URL-encoded)
local categories = {"%E6%9C%8D%E8%A3%9D", "%E6%95%B8%E7%A2%BC", "%E5%AE%B6%E5%B1%85", "%E7%BE%8E%E5%A6%9D",
                    "%E9%81%8B%E5%8B%95", "%E9%9E%8B%E9%9D%B4", "%E9%A3%9F%E5%93%81", "%E6%AF%8D%E5%AC%B0"}
math.randomseed(tonumber(os.getenv("SEED") or "1"))

-- THINK_MS (optional): each connection waits a random time, exponential with this mean,
-- before each request (paced load: about connections ÷ (THINK_MS + latency) requests/s)
local think = tonumber(os.getenv("THINK_MS") or "0")
if think > 0 then
  delay = function()
    return -think * math.log(1 - math.random())
  end
end

request = function()
  local path
  if route == "recommendations" then
    path = "/v1/recommendations?n=10&user_id=u" .. math.random(0, users - 1)
  elseif route == "in_category" then
    path = "/v1/recommendations?n=10&user_id=u" .. math.random(0, users - 1) .. "&category=" ..
           categories[math.random(#categories)]
  elseif route == "new_shoppers" then  -- ids longer than any known one: unknown users (trending)
    path = "/v1/recommendations?n=10&user_id=new-shopper-" .. math.random(0, users - 1)
  elseif route == "search_new_shoppers" then
    path = "/v1/search?q=" .. queries[math.random(#queries)] .. "&user_id=new-shopper-" .. math.random(0, users - 1)
  elseif route == "feed" then
    path = "/v1/feed?size=20&user_id=u" .. math.random(0, users - 1)
  elseif route == "similar" then
    path = "/v1/items/i" .. math.random(0, items - 1) .. "/similar?n=10"
  elseif route == "search" then
    path = "/v1/search?q=" .. queries[math.random(#queries)] .. "&user_id=u" .. math.random(0, users - 1)
  else
    path = "/healthz"
  end
  return wrk.format("GET", path)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
