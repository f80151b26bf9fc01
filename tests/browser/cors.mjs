// Runs CORS scenarios in headless chromium: pages from origin PAGE (allowed) and EVIL (not
// allowed) call the API through Envoy at API. Prints one JSON object of outcomes.
//
// Each outcome is {ok, status, body} when fetch resolved and the script could read the
// response, or {error} when the browser refused it (a CORS failure is a TypeError).
import { chromium } from "playwright-core";

const { PAGE, EVIL, API } = process.env;
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

const browser = await chromium.launch({
  executablePath,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const context = await browser.newContext();
  // A session cookie for the API's site (cookies ignore ports: PAGE and API are same-site,
  // cross-origin, so the browser sends it when credentials are included).
  await context.addCookies([{ name: "sid", value: "s3cret-session", domain: "localhost", path: "/" }]);
  const page = await context.newPage();

  const run = (p, url, init) =>
    p.evaluate(
      async ([url, init]) => {
        try {
          const r = await fetch(url, init);
          return { ok: r.ok, status: r.status, body: await r.text() };
        } catch (e) {
          return { error: String(e) };
        }
      },
      [url, init],
    );

  await page.goto(PAGE);
  const out = {};
  out.simple_get = await run(page, `${API}/nocred/simple`, {});
  out.credentialed_allowed = await run(page, `${API}/cred/with-cookie`, { credentials: "include" });
  out.credentialed_not_allowed = await run(page, `${API}/nocred/with-cookie`, { credentials: "include" });
  out.preflighted_put = await run(page, `${API}/cred/put`, {
    method: "PUT",
    credentials: "include",
    headers: { "content-type": "application/json", "x-trace": "abc" },
    body: "{}",
  });

  const evil = await context.newPage();
  await evil.goto(EVIL);
  out.evil_put = await run(evil, `${API}/cred/evil`, {
    method: "PUT",
    headers: { "content-type": "application/json", "x-trace": "abc" },
    body: "{}",
  });
  out.evil_get = await run(evil, `${API}/nocred/evil-get`, {});
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
