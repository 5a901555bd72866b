# The reference tool's text-to-text guide (Finetuner 0.7/0.8), as its users run it, their data aside:
# train_data, query_data, index_data and test_da are the user's. tests/test_porting.py runs this file
# with only the imports, the model name and the host changed (the host through $TUNERFLOW_HOST).
import finetuner
from finetuner.callback import EvaluationCallback

finetuner.login()
run = finetuner.fit(
    model='bert-base-cased',
    train_data=train_data,
    run_name='finetune-quora-dataset-bert-base-cased',
    experiment_name='finetune-quora-dataset',
    description='this is a trial run on quora dataset with bert-base-cased.',
    loss='TripletMarginLoss',
    miner='TripletMarginMiner',
    optimizer='Adam',
    learning_rate=1e-5,
    epochs=3,
    batch_size=128,
    callbacks=[EvaluationCallback(query_data=query_data, index_data=index_data, batch_size=32)],
    to_onnx=True,
)
print(run.status())   # {'status': 'CREATED', 'details': 'Run submitted and awaits execution'}
run = finetuner.get_run('finetune-quora-dataset-bert-base-cased', experiment_name='finetune-quora-dataset')
print(run.logs())
artifact = run.save_artifact('bert-model')
model = finetuner.get_model(artifact=artifact)
finetuner.encode(model=model, data=test_da)          # embeddings set in place, shape (1, 768)
model = finetuner.get_model(artifact, is_onnx=True)
