# make bench-redis's Sidekiq peer (Debian ruby-sidekiq):
#   ruby sidekiq_seed.rb URL JOBS WORKERS
# pushes JOBS seed jobs (SHA-256 of the job number's decimal text) with
# push_bulk, serves them with `sidekiq -c WORKERS` (threads of one process:
# Sidekiq's unit of concurrency), each job storing its digest in a hash so
# that the results can be checked against the serial computation, and prints
#   sidekiq: 2000 jobs, 2 workers, 1.234 s, 1621 jobs/s, results ok
# The time runs from the first push to the last result; the server process
# is started first and waited for (its startup is not timed).
require "digest"
require "sidekiq"

class SeedJob
  include Sidekiq::Worker
  sidekiq_options queue: "seed", retry: false

  def perform(n)
    Sidekiq.redis { |c| c.hset("sk:results", n.to_s, Digest::SHA256.hexdigest(n.to_s)) }
  end
end

if $PROGRAM_NAME == __FILE__
  url, jobs, workers = ARGV[0], ARGV[1].to_i, ARGV[2].to_i
  abort "usage: sidekiq_seed.rb URL JOBS WORKERS" if url.nil? || jobs <= 0 || workers <= 0
  Sidekiq.configure_client { |c| c.redis = { url: url } }
  Sidekiq.redis { |c| c.del("sk:results", "queue:seed") }
  env = { "REDIS_URL" => url }
  pid = spawn(env, "sidekiq", "-r", File.expand_path(__FILE__), "-c", workers.to_s, "-q", "seed",
              out: File::NULL, err: File::NULL)
  begin
    # up to 60 s for the server to register its process
    600.times do
      break if Sidekiq.redis { |c| c.scard("processes") } > 0
      sleep 0.1
    end
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    (1..jobs).each_slice(1000) { |s| Sidekiq::Client.push_bulk("class" => SeedJob, "args" => s.map { |n| [n] }) }
    6000.times do # up to 600 s
      break if Sidekiq.redis { |c| c.hlen("sk:results") } >= jobs
      sleep 0.01
    end
    t1 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  ensure
    Process.kill("TERM", pid)
    Process.wait(pid)
  end
  got = Sidekiq.redis { |c| c.hgetall("sk:results") }
  bad = (1..jobs).count { |n| got[n.to_s] != Digest::SHA256.hexdigest(n.to_s) }
  secs = t1 - t0
  printf("sidekiq: %d jobs, %d workers, %.3f s, %.0f jobs/s, %s\n", jobs, workers, secs, jobs / secs,
         bad.zero? ? "results ok" : "#{bad} WRONG")
  exit(bad.zero? ? 0 : 1)
end
