using ClusterEnv.Cluster;
using ClusterEnv.Envs;
using ClusterEnv.Learners.Impala;
using ClusterEnv.Learners.Ppo;
using ClusterEnv.Policies;
using ClusterEnv.Sync;
using ClusterEnv.Wrappers;

namespace ClusterEnv.Tests.Cluster;

/// <summary>
/// CartPole whose observation is NaN once, at step 30 of whichever sub-env, in whichever worker process, first claims
/// the flag file named by its "flag" argument (a rename: exactly one claims it). Its replacement finds no flag and behaves.
/// </summary>
public sealed class PoisonOnceEnvs : IEnvRegistrar
{
    public const string Id = "Test/PoisonOnce-v0";

    public void Register() => Gym.Register(Id, kw => new PoisonOnce(Gym.Make("CartPole-v1"), (string)kw!["flag"]), maxEpisodeSteps: 500);

    private sealed class PoisonOnce(IEnv env, string flag) : EnvWrapper(env)
    {
        private int _steps;

        public override StepResult Step(EnvAction action, Span<float> observation)
        {
            var result = base.Step(action, observation);
            if (++_steps == 30 && Claim()) observation[0] = float.NaN;
            return result;
        }

        private bool Claim()
        {
            try
            {
                File.Move(flag, flag + ".taken");
                return true;
            }
            catch (IOException)
            {
                return false; // gone: another sub-env or worker took it
            }
        }
    }
}

/// <summary>
/// A worker that sends data no learner may use (here a NaN observation) is named, dropped and replaced, and training
/// goes on with nothing of it reaching the learner: the acting worker's rollouts in a stream (IMPALA) and in lockstep
/// collections (PPO on workers).
/// </summary>
[NonParallelizable]
[Category("Process")]
public class BadDataTests
{
    private static (ClusterVecEnv Env, string Flag) Start()
    {
        string flag = Path.Combine(Directory.CreateTempSubdirectory("clusterenv-poison-").FullName, "flag");
        File.WriteAllText(flag, "");
        var env = new ClusterVecEnv(new ClusterOptions
        {
            EnvId = PoisonOnceEnvs.Id, NumEnvs = 4, NumWorkers = 2, ReplaceLostWorkers = true,
            WorkerAssemblies = [typeof(PoisonOnceEnvs).Assembly.Location], EnvArgs = new Dictionary<string, string> { ["flag"] = flag },
        });
        return (env, flag);
    }

    [Test]
    public void AWorkerStreamingANaNObservation_IsNamedDroppedAndReplaced_AndImpalaTrainsOnWithFiniteWeights()
    {
        var (env, flag) = Start();
        using (env)
        {
            // The run ends once the replacement has streamed (not at a fixed budget: the other worker alone can finish
            // any budget before a new process registers on a loaded machine, and then nothing was replaced yet).
            using var stop = new CancellationTokenSource();
            long streamedAtReplacement = -1;
            int replaced = -1, updatesAfter = 0;
            var result = Impala.Train(env, new ImpalaOptions { Seed = 1, TotalTimesteps = 20_000_000 }, SyncStrategy.Parse("0.05:8"), m =>
            {
                if (env.Elastic.WorkersReplaced == 1 && replaced < 0)
                {
                    replaced = env.Elastic.Generation(0) == 1 ? 0 : 1;
                    streamedAtReplacement = env.Rollouts.StreamedRollouts[replaced];
                }
                if (replaced >= 0 && env.Rollouts.StreamedRollouts[replaced] > streamedAtReplacement && ++updatesAfter >= 20) stop.Cancel();
            }, cancellationToken: stop.Token);
            Assert.That(File.Exists(flag + ".taken"), Is.True, "a worker sent its NaN");
            Assert.That(env.Elastic.Evictions, Has.Count.EqualTo(1));
            Assert.That(env.Elastic.Evictions[0], Does.Match("worker 'worker-00[01]': rollout \\d+: a non-finite observation \\(NaN"));
            Assert.That(env.Elastic.WorkersLost, Is.EqualTo(1));
            Assert.That(env.Elastic.WorkersReplaced, Is.EqualTo(1), "and replaced");
            Assert.That(result.Stopped, Is.True, "stopped by the test after the replacement, within the budget");
            Assert.That(env.Rollouts.StreamedRollouts[replaced], Is.GreaterThan(streamedAtReplacement), "the replacement streamed and training went on");
            Assert.That(ActorCritic.IndexOfNonFinite(result.Policy.Parameters), Is.EqualTo(-1), "no NaN reached the weights");
            Assert.That(result.History.All(h => double.IsFinite(h.PolicyLoss) && double.IsFinite(h.ValueLoss)), Is.True, "nor any loss");
        }
        Directory.Delete(Path.GetDirectoryName(flag)!, recursive: true);
    }

    [Test]
    public void AWorkerSendingANaNObservationInALockstepCollection_IsReplaced_AndItsRowsComeFromTheReplacement()
    {
        var (env, flag) = Start();
        using (env)
        {
            var result = Ppo.TrainOnWorkers(env, new PpoOptions { Seed = 1, TotalTimesteps = 4 * 128 * 6 }, SyncStrategy.Always);
            Assert.That(File.Exists(flag + ".taken"), Is.True, "a worker sent its NaN");
            Assert.That(env.Elastic.Evictions, Has.Count.EqualTo(1));
            Assert.That(env.Elastic.Evictions[0], Does.Match("worker 'worker-00[01]': a non-finite observation \\(NaN"));
            Assert.That(env.Elastic.WorkersReplaced, Is.EqualTo(1));
            Assert.That(result.History, Has.Count.EqualTo(6), "every iteration ran");
            Assert.That(ActorCritic.IndexOfNonFinite(result.Policy.Parameters), Is.EqualTo(-1), "no NaN reached the weights");
        }
        Directory.Delete(Path.GetDirectoryName(flag)!, recursive: true);
    }
}
