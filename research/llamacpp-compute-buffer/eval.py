import json,sys,statistics
import os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from graph import build; from galloc import run
opts=dict(a.split('=') for a in sys.argv[1:]); opts={k:int(v) for k,v in opts.items()}
rs=[json.loads(l) for l in open(os.environ.get('CALIBRATION', os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../../shared/calibration/llamacpp_cpu_runs.jsonl')))]
errs=[]; cnt_bad=0
for i,r in enumerate(rs):
    if not r['ok']: continue
    o=r['observed']; c=o['ctx_logged']; s=r['settings']
    t=int(c['n_ubatch']); fa=c['flash_attn']!='disabled'
    ns=int(c['n_seq_max']); uni=c['kv_unified']=='true'
    cells=o['iswa_cells'] or {}
    nkv=int(c['n_ctx_seq'])
    nkv_full=cells.get('non-SWA',nkv if True else 0); nkv_swa=cells.get('SWA',nkv)
    leafs,nodes=build(r['hparams'],r['arch'],t,ns,fa,nkv_full,nkv_swa,s['type_k']!='f16',s['type_v']!='f16',opts)
    nn=len([n for n in nodes if not n.leaf])
    pred=run(leafs,nodes)/2**20; obs=o['compute_buffers_MiB']['CPU']
    errs.append(((pred-obs)/obs,i,r['model_name'],nkv,ns,uni,t,s['type_k'],s['type_v'],fa,s['swa_full'],obs,round(pred,2),nn,o['graph_nodes']))
a=[abs(e[0]) for e in errs]
print(len(errs),'median %.4f worst %.4f over15 %d'%(statistics.median(a),max(a),sum(x>0.15 for x in a)))
if opts.get('v'):
    errs.sort(key=lambda e:abs(e[0]))
    for e in errs[-opts['v']:]: print(e)
