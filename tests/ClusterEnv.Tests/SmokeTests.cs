using ClusterEnv.Envs;

namespace ClusterEnv.Tests;

public class SmokeTests
{
    [Test]
    public void Make_CartPole_Resets()
    {
        using var env = Gym.Make("CartPole-v1");
        var (obs, _) = env.Reset(seed: 1);
        Assert.That(obs, Has.Length.EqualTo(4));
    }
}
