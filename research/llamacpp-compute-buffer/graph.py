import sys; sys.path.insert(0,'/tmp/cb2')
from galloc import T, run
EXT=T('ext',0,ext=True)
def build(h,arch,t,ns,fa,nkv,nkv_swa,krot,vrot,opts):
    e=h['n_embd']; nh=h['n_head']; nhk=h['n_head_kv']; d=h['head_dim_k']; kvd=h['n_embd_k_gqa']; vd=h['n_embd_v_gqa']
    ff=h['n_ff']; V=h['n_vocab']; L=h['n_layer']; gemma=arch=='gemma2'; qwen=arch=='qwen2'
    swa=set(h.get('swa_layers') or [])
    leafs=[]; nodes=[]
    def leaf(name,size):
        x=T(name,size,leaf=True,inp=True,key=('leaf',name)); leafs.append(x); return x
    def node(name,size,srcs,ip=False,key=None):
        x=T(name,size,srcs,inplace=ip,key=key if key is not None else ('f32',size)); nodes.append(x); return x
    def view(name,src):
        vs=src.view_src if src.view_src is not None else src
        x=T(name,0,[src],view_src=vs,ext=vs.ext,key=src.key); nodes.append(x); return x
    def extview(name,srcs=()):
        x=T(name,0,list(srcs),view_src=EXT,ext=True); nodes.append(x); return x
    mb=2 if fa else 4
    tok=leaf('tok',4*t)
    if opts.get('embd_leaf'): leaf('inp_embd',4*e*t)
    lazy={}
    def L_(name,size):
        if name not in lazy: lazy[name]=leaf(name,size)
        return lazy[name]
    x=node('embd',4*e*t,[tok])
    if gemma: x=node('inp_scaled',4*e*t,[x],True)
    def norm(name,inp,ip_first=True):
        c=node(name,4*e*t,[inp],True); return node(name+'_w',4*e*t,[c],True)
    def hadamard(name,q,rot):
        r=view(name+'_r',q); m=node(name+'_mm',q_size(q),[r]); return view(name+'_b',m)
    sizes={}
    def q_size(q): return sizes[q.view_src if q.view_src is not None else q]
    for l in range(L):
        is_swa=l in swa; cells=nkv_swa if is_swa else nkv; sfx='_swa' if is_swa else ''
        inpL=x
        c=norm(f'{l}.attn_norm',x)
        def mm(name,n,src,bias=False):
            m=node(name,4*n*t,[src]); sizes[m]=4*n*t
            if bias: m=node(name+'_b',4*n*t,[m],True); sizes[m]=4*n*t
            return m
        Q=mm(f'{l}.q',nh*d,c,qwen); K=mm(f'{l}.k',kvd,c,qwen); Vv=mm(f'{l}.v',vd,c,qwen)
        # graph order: q chain, v chain, k chain (build_attn expands q, v, k)
        # we emit in that order by re-ordering nodes list afterwards is complex; emit directly
        nodes.remove(Q); nodes.remove(K); nodes.remove(Vv)
        for xx in ([Q] if not qwen else []): pass
        # q chain
        def emit(n):
            nodes.append(n)
        # rebuild with correct order
        def chain_mm(m):
            if qwen:
                # m is bias add whose src is the mm
                base=m.srcs[0]; emit(base); emit(m)
            else: emit(m)
        chain_mm(Q); qr=view(f'{l}.q_rs',Q); pos=L_('pos',4*t)
        q=node(f'{l}.q_rope',4*nh*d*t,[qr,pos],True,key=('f32',4*nh*d*t))
        sizes[q]=4*nh*d*t
        if gemma: q=node(f'{l}.q_scale',4*nh*d*t,[q],True); sizes[q]=4*nh*d*t
        if krot:
            rot=L_('k_rot'+sfx,4*d*d); r=view(f'{l}.qh_r',q); m=node(f'{l}.qh',4*nh*d*t,[r,rot]); q=view(f'{l}.qh_b',m)
        chain_mm(Vv); v=view(f'{l}.v_rs',Vv)
        if vrot:
            rot=L_('v_rot'+sfx,4*d*d); r=view(f'{l}.vh_r',v); m=node(f'{l}.vh',4*vd*t,[r,rot]); v=view(f'{l}.vh_b',m)
        chain_mm(K); kr=view(f'{l}.k_rs',K)
        k=node(f'{l}.k_rope',4*kvd*t,[kr,pos],True,key=('f32',4*kvd*t))
        if krot:
            rot=lazy['k_rot'+sfx]; r=view(f'{l}.kh_r',k); m=node(f'{l}.kh',4*kvd*t,[r,rot]); k=view(f'{l}.kh_b',m)
        kidx=L_('k_idxs'+sfx,8*t)
        k2=view(f'{l}.k_2d',k); extview(f'{l}.set_k',[k2,kidx])
        vidx=L_('v_idxs'+sfx,8*t*(vd if (not fa and opts.get('vidx_big',True)) else 1))
        v2=view(f'{l}.v_2d',v)
        if not fa: v2=view(f'{l}.v_1',v2)
        extview(f'{l}.set_v',[v2,vidx])
        mask=L_('mask'+sfx,cells*t*mb)
        extview(f'{l}.get_k'); extview(f'{l}.get_v'); extview(f'{l}.kp'); extview(f'{l}.vp')
        qv=view(f'{l}.q4',q); qp=view(f'{l}.qp',qv)
        if fa:
            o=node(f'{l}.fa',4*nh*d*t,[qp,mask]); o=view(f'{l}.fa2d',o)
        else:
            kq=node(f'{l}.kq',4*cells*t*nh,[qp])
            if gemma:
                kq=node(f'{l}.kq_s1',4*cells*t*nh,[kq],True); kq=node(f'{l}.kq_tanh',4*cells*t*nh,[kq],True); kq=node(f'{l}.kq_s2',4*cells*t*nh,[kq],True)
            kq=node(f'{l}.softmax',4*cells*t*nh,[kq,mask],True)
            kqv=node(f'{l}.kqv',4*nh*d*t,[kq]); p=view(f'{l}.kqv_p',kqv)
            o=node(f'{l}.cont',4*nh*d*t,[p])
        if vrot:
            r=view(f'{l}.oh_r',o); m=node(f'{l}.oh',4*nh*d*t,[r,lazy['v_rot'+sfx]]); o=view(f'{l}.oh_b',m)
        o=node(f'{l}.wo',4*e*t,[o])
        if l==L-1:
            oid=L_('out_ids',4*t)
            o=node(f'{l}.gr_o',4*e*t,[o,oid]); inpL=node(f'{l}.gr_x',4*e*t,[inpL,oid])
        if gemma:
            o=norm(f'{l}.post',o)
        r=node(f'{l}.res',4*e*t,[o,inpL],True)
        c=norm(f'{l}.ffn_norm',r)
        up=node(f'{l}.up',4*ff*t,[c]); g=node(f'{l}.gate',4*ff*t,[c])
        gl=node(f'{l}.glu',4*ff*t,[g,up]); dn=node(f'{l}.down',4*e*t,[gl])
        if gemma: dn=norm(f'{l}.fpost',dn)
        x=node(f'{l}.out',4*e*t,[dn,r],True)
    c=node('onorm',4*e*t,[x],True); c=node('onorm_w',4*e*t,[c],True); c.output=True
    lg=node('logits',4*V*t,[c])
    if gemma:
        lg=node('sc1',4*V*t,[lg],True); lg=node('tanh',4*V*t,[lg],True); lg=node('sc2',4*V*t,[lg],True)
    lg.output=True
    # move leafs in order of first use
    return leafs,nodes
