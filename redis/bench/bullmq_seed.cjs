// make bench-redis's BullMQ peer (npm bullmq, installed by run.sh under the
// build directory; run with NODE_PATH pointing at its node_modules):
//   node bullmq_seed.cjs URL JOBS WORKERS
// pushes JOBS seed jobs (SHA-256 of the job number's decimal text) with
// addBulk, serves them with one Worker of concurrency WORKERS (BullMQ's unit
// of concurrency: async handlers in one Node process), checks each returned
// digest against the serial computation and prints
//   bullmq: 2000 jobs, 2 workers, 1.234 s, 1621 jobs/s, results ok
// The time runs from the first push to the last completion; the worker is
// connected first (its startup is not timed).
const { Queue, Worker } = require("bullmq");
const { createHash } = require("crypto");

const [url, jobsArg, workersArg] = process.argv.slice(2);
const jobs = Number(jobsArg), workers = Number(workersArg);
if (!url || !(jobs > 0) || !(workers > 0)) {
  console.error("usage: bullmq_seed.cjs URL JOBS WORKERS");
  process.exit(2);
}
const u = new URL(url);
const connection = { host: u.hostname, port: Number(u.port || 6379), db: Number(u.pathname.slice(1) || 0) };
const seed = (n) => createHash("sha256").update(String(n)).digest("hex");

(async () => {
  const queue = new Queue("seed", { connection });
  await queue.obliterate({ force: true });
  let done = 0, bad = 0, finish;
  const all = new Promise((resolve) => (finish = resolve));
  const worker = new Worker("seed", async (job) => seed(job.data.n), { connection, concurrency: workers });
  worker.on("completed", (job, result) => {
    if (result !== seed(job.data.n)) bad++;
    if (++done === jobs) finish();
  });
  worker.on("failed", () => {
    bad++;
    if (++done === jobs) finish();
  });
  await worker.waitUntilReady();
  const t0 = process.hrtime.bigint();
  for (let lo = 1; lo <= jobs; lo += 1000) {
    const batch = [];
    for (let n = lo; n < lo + 1000 && n <= jobs; n++) batch.push({ name: "seed", data: { n } });
    await queue.addBulk(batch);
  }
  const timer = setTimeout(() => finish(), 600000);
  await all;
  clearTimeout(timer);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  await worker.close();
  await queue.close();
  const ok = bad === 0 && done === jobs;
  console.log(`bullmq: ${jobs} jobs, ${workers} workers, ${secs.toFixed(3)} s, ${(jobs / secs).toFixed(0)} jobs/s, ` +
              (ok ? "results ok" : `${bad + jobs - done} WRONG`));
  process.exit(ok ? 0 : 1);
})().catch((e) => {
  console.error("bullmq:", e.message);
  process.exit(1);
});
