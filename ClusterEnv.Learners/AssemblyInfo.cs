// Learners (PPO, IMPALA, data-parallel) arrive with the NN-engine and APS issues.
[assembly: System.CLSCompliant(false)]
